// The baseline every metric is compared with: a uniformly random map, drawn from the pixels' own hash so that
// the same input gives the same map and a perturbed input a new one.
import { createRandom } from '../util/random';
import type { Explainer, Pixels } from './explainer';
import { targetValue } from './target';

function hashPixels(pixels: Float32Array, seed: number): number {
  let hash = 2166136261 ^ seed;
  for (const value of pixels) hash = Math.imul(hash ^ Math.round(value * 65535), 16777619);
  return hash >>> 0;
}

/** The random baseline's map of an image: no forward pass, so it runs for any network. */
export function randomMap(image: Pixels, seed: number): Float32Array {
  const random = createRandom(hashPixels(image.pixels, seed));
  return Float32Array.from({ length: image.sizePx * image.sizePx }, () => random.next());
}

export const randomBaseline: Explainer = {
  method: 'random',
  description: 'Random baseline: uniform noise, for comparison',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'assigned',
  async explain({ net, image, target, seed }) {
    return {
      heatmap: randomMap(image, seed),
      pairHeatmap: target.kind === 'similarity' ? randomMap({ ...image, pixels: target.pair }, seed + 1) : undefined,
      score: await targetValue(net, image, target),
    };
  },
};
