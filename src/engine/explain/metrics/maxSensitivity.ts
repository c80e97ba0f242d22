// Max-sensitivity (Yeh et al. 2019, as the seed computes it): the largest relative change ‖h − h′‖ / ‖h‖ of a
// map when both inputs get small uniform noise, over a few draws; the image's and the pair's maxima averaged.
import * as tf from '@tensorflow/tfjs-core';
import type { Random } from '../../util/random';

export type PairMaps = (image: tf.Tensor4D, pair: tf.Tensor4D) => Promise<{ heatmap: Float32Array; pairHeatmap?: Float32Array }>;

export function relativeChange(reference: Float32Array, other: Float32Array): number {
  let difference = 0;
  let norm = 0;
  for (let i = 0; i < reference.length; i++) {
    difference += (reference[i] - other[i]) ** 2;
    norm += reference[i] ** 2;
  }
  return Math.sqrt(difference) / Math.max(Math.sqrt(norm), 1e-6);
}

export async function maxSensitivity(
  mapsOf: PairMaps,
  image: tf.Tensor4D,
  pair: tf.Tensor4D,
  reference: { heatmap: Float32Array; pairHeatmap?: Float32Array },
  samples: number,
  radius: number,
  random: Random,
): Promise<number> {
  let imageMax = 0;
  let pairMax = 0;
  for (let sample = 0; sample < samples; sample++) {
    const noisyImage = tf.tidy(() => tf.add(image, tf.randomUniform(image.shape, -radius, radius, 'float32', random.int(2 ** 31))) as tf.Tensor4D);
    const noisyPair = tf.tidy(() => tf.add(pair, tf.randomUniform(pair.shape, -radius, radius, 'float32', random.int(2 ** 31))) as tf.Tensor4D);
    try {
      const noisy = await mapsOf(noisyImage, noisyPair);
      imageMax = Math.max(imageMax, relativeChange(reference.heatmap, noisy.heatmap));
      if (reference.pairHeatmap && noisy.pairHeatmap) pairMax = Math.max(pairMax, relativeChange(reference.pairHeatmap, noisy.pairHeatmap));
    } finally {
      tf.dispose([noisyImage, noisyPair]);
    }
  }
  return reference.pairHeatmap ? (imageMax + pairMax) / 2 : imageMax;
}
