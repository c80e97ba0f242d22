// Average drop and increase (Chattopadhay et al. 2018, in the seed's two-image form): mask each image by its
// own map (x ⊙ h) and see how much the similarity falls, and whether it rises.
import * as tf from '@tensorflow/tfjs-core';
import type { PairScorer } from './insertionDeletion';

export interface AverageDropScores {
  /** max(0, s − s′) / s with both images masked. */
  simultaneousDrop: number;
  /** 1 when masking both raised the similarity, else 0. */
  simultaneousIncrease: number;
  /** The same with one image masked and the other intact, both directions averaged. */
  conditionalDrop: number;
  conditionalIncrease: number;
}

function masked(image: tf.Tensor4D, heatmap: Float32Array): tf.Tensor4D {
  const sizePx = image.shape[1];
  return tf.tidy(() => tf.mul(image, tf.tensor4d(heatmap, [1, sizePx, sizePx, 1])) as tf.Tensor4D);
}

export function averageDropIncrease(score: PairScorer, image: tf.Tensor4D, pair: tf.Tensor4D, heatmap: Float32Array, pairHeatmap: Float32Array): AverageDropScores {
  const maskedImage = masked(image, heatmap);
  const maskedPair = masked(pair, pairHeatmap);
  // Rows: intact, both masked, image masked, pair masked.
  const images = tf.concat([image, maskedImage, maskedImage, image], 0) as tf.Tensor4D;
  const pairs = tf.concat([pair, maskedPair, pair, maskedPair], 0) as tf.Tensor4D;
  try {
    const [base, both, imageOnly, pairOnly] = score(images, pairs);
    // A base at or below 0 has nothing to drop from.
    const drop = (value: number) => (base > 1e-6 ? Math.max(0, base - value) / base : 0);
    const increase = (value: number) => (value > base ? 1 : 0);
    return {
      simultaneousDrop: drop(both),
      simultaneousIncrease: increase(both),
      conditionalDrop: (drop(imageOnly) + drop(pairOnly)) / 2,
      conditionalIncrease: (increase(imageOnly) + increase(pairOnly)) / 2,
    };
  } finally {
    tf.dispose([maskedImage, maskedPair, images, pairs]);
  }
}
