// Averaged transforms (the seed's "integrated transforms"): gradients averaged along straight paths from the
// image to colour-augmented copies of it, so the map reflects what the target is invariant to along the way.
// Colour transforms keep every pixel in place, which a path between two images needs.
import { createRandom } from '../util/random';
import type { Explainer, Pixels } from './explainer';
import { averagedGradientMaps } from './gradients';
import { colourViews } from './views';

/** λ·x + (1 − λ)·a for λ = 1, (m−1)/m, …, 1/m (outer) and every view a (inner): [m · views, S, S, C]. */
function interpolations(image: Pixels, views: Float32Array, viewCount: number, steps: number): Float32Array {
  const size = image.pixels.length;
  const paths = new Float32Array(steps * viewCount * size);
  for (let step = 0; step < steps; step++) {
    const lambda = (steps - step) / steps;
    for (let view = 0; view < viewCount; view++) {
      const offset = (step * viewCount + view) * size;
      for (let i = 0; i < size; i++) paths[offset + i] = image.pixels[i] * lambda + views[view * size + i] * (1 - lambda);
    }
  }
  return paths;
}

export const averagedTransforms: Explainer = {
  method: 'averaged-transforms',
  description: 'Averaged transforms: input × gradient averaged along paths from the image to colour-augmented copies',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options, seed }) {
    const random = createRandom(seed);
    const viewCount = options.averagedTransformViews;
    const steps = options.averagedTransformSteps;
    const mixed = interpolations(image, colourViews(image, viewCount, random), viewCount, steps);
    let pairMixed: Float32Array | undefined;
    if (target.kind === 'similarity') {
      const pair = { ...image, pixels: target.pair };
      pairMixed = interpolations(pair, colourViews(pair, viewCount, random), viewCount, steps);
    }
    // λ = 1 comes first: the first copy is the image itself, whose value is the score.
    return averagedGradientMaps(net, image, target, mixed, pairMixed, viewCount * steps);
  },
};
