// The baseline every metric is compared with: a uniformly random map, drawn from the pixels' own hash so that
// the same input gives the same map and a perturbed input a new one.
import * as tf from '@tensorflow/tfjs-core';
import { createRandom } from '../util/random';
import type { Explainer } from './explainer';
import { targetValue } from './target';

function hashPixels(image: tf.Tensor4D, seed: number): number {
  let hash = 2166136261 ^ seed;
  for (const value of image.dataSync()) hash = Math.imul(hash ^ Math.round(value * 65535), 16777619);
  return hash >>> 0;
}

/** The random baseline's map of `image`: no forward pass, so it runs for any network, a frozen import too. */
export function randomMap(image: tf.Tensor4D, seed: number): Float32Array {
  const random = createRandom(hashPixels(image, seed));
  return Float32Array.from({ length: image.shape[1] * image.shape[2] }, () => random.next());
}

export const randomBaseline: Explainer = {
  method: 'random',
  description: 'Random baseline: uniform noise, for comparison',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'assigned',
  async explain({ net, image, target, seed }) {
    return {
      heatmap: randomMap(image, seed),
      pairHeatmap: target.kind === 'similarity' ? randomMap(target.pair, seed + 1) : undefined,
      score: targetValue(net, image, target),
    };
  },
};
