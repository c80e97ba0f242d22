// Insertion and deletion (Petsiuk et al. 2018, in the seed's two-image form): move pixels from a start image
// to a finish image in heatmap order, most important first, and take the area under the similarity curve.
// Deletion goes from the image to black, insertion from a blurred copy to the image. Simultaneous: both images
// change at once; conditional: one changes while the other stays intact (both directions, averaged).
import * as tf from '@tensorflow/tfjs-core';

/** cos(f(images_i), f(pairs_i)) per row; `pairs` may be one image, compared with every row. */
export type PairScorer = (images: tf.Tensor4D, pairs: tf.Tensor4D) => Float32Array;

/** Masks [(steps + 1) · S · S]: row i has 1s on the first round(i · S² / steps) pixels in heatmap order. */
export function revealMasks(heatmap: Float32Array, steps: number): Float32Array {
  const pixels = heatmap.length;
  // Ties keep pixel order, so a flat map deletes row by row rather than at random.
  const order = Array.from(heatmap.keys()).sort((a, b) => heatmap[b] - heatmap[a] || a - b);
  const rank = new Int32Array(pixels);
  order.forEach((pixel, position) => (rank[pixel] = position));
  const masks = new Float32Array((steps + 1) * pixels);
  for (let step = 0; step <= steps; step++) {
    const revealed = Math.round((step * pixels) / steps);
    for (let pixel = 0; pixel < pixels; pixel++) if (rank[pixel] < revealed) masks[step * pixels + pixel] = 1;
  }
  return masks;
}

/** Trapezoid area under a curve sampled at evenly spaced points of [0, 1]. */
export function areaUnderCurve(curve: ArrayLike<number>): number {
  const intervals = curve.length - 1;
  if (intervals < 1) return curve.length === 1 ? curve[0] : 0;
  let sum = 0;
  for (let i = 0; i < curve.length; i++) sum += curve[i];
  return (sum - curve[0] / 2 - curve[intervals] / 2) / intervals;
}

/** A separable Gaussian blur with mirrored edges, [N, S, S, C]. */
export function gaussianBlur(images: tf.Tensor4D, sigmaPx: number): tf.Tensor4D {
  return tf.tidy(() => {
    const radius = Math.max(1, Math.min(Math.ceil(2 * sigmaPx), images.shape[1] - 1));
    const weights = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigmaPx * sigmaPx)));
    const total = weights.reduce((sum, weight) => sum + weight, 0);
    const kernel = weights.map((weight) => weight / total);
    const channels = images.shape[3];
    const perChannel = (shape: [number, number]) => tf.tile(tf.reshape(tf.tensor1d(kernel), [...shape, 1, 1]), [1, 1, channels, 1]) as tf.Tensor4D;
    const padded = tf.mirrorPad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], 'reflect');
    const vertical = tf.depthwiseConv2d(padded, perChannel([2 * radius + 1, 1]), 1, 'valid');
    return tf.depthwiseConv2d(vertical, perChannel([1, 2 * radius + 1]), 1, 'valid');
  });
}

/** The blur insertion starts from: σ of a sixteenth of the image side (5 px at 224 px in the seed is about a 45th; small images need more). */
export function insertionBlurSigma(sizePx: number): number {
  return Math.max(1.5, sizePx / 16);
}

export interface ReplacementSide {
  start: tf.Tensor4D;
  finish: tf.Tensor4D;
  heatmap: Float32Array;
}

function stages(side: ReplacementSide, steps: number): tf.Tensor4D {
  const sizePx = side.start.shape[1];
  return tf.tidy(() => {
    const masks = tf.tensor4d(revealMasks(side.heatmap, steps), [steps + 1, sizePx, sizePx, 1]);
    return tf.add(tf.mul(side.start, tf.sub(1, masks)), tf.mul(side.finish, masks)) as tf.Tensor4D;
  });
}

/** Similarity at each of steps + 1 stages; `other` moves at the same pace (simultaneous) or stays as it is (conditional). */
export function replacementCurve(score: PairScorer, side: ReplacementSide, other: ReplacementSide | tf.Tensor4D, steps: number): Float32Array {
  const images = stages(side, steps);
  const pairs = other instanceof tf.Tensor ? other : stages(other, steps);
  try {
    return score(images, pairs);
  } finally {
    tf.dispose(other instanceof tf.Tensor ? [images] : [images, pairs]);
  }
}

export interface InsertionDeletionScores {
  simultaneousInsertion: number;
  simultaneousDeletion: number;
  conditionalInsertion: number;
  conditionalDeletion: number;
}

/** All four areas for one image pair and its two maps. */
export function insertionDeletion(score: PairScorer, image: tf.Tensor4D, pair: tf.Tensor4D, heatmap: Float32Array, pairHeatmap: Float32Array, steps: number): InsertionDeletionScores {
  const sizePx = image.shape[1];
  const black = tf.zerosLike(image);
  const blurredImage = gaussianBlur(image, insertionBlurSigma(sizePx));
  const blurredPair = gaussianBlur(pair, insertionBlurSigma(sizePx));
  try {
    const deleteImage = { start: image, finish: black, heatmap };
    const deletePair = { start: pair, finish: black, heatmap: pairHeatmap };
    const insertImage = { start: blurredImage, finish: image, heatmap };
    const insertPair = { start: blurredPair, finish: pair, heatmap: pairHeatmap };
    const area = (side: ReplacementSide, other: ReplacementSide | tf.Tensor4D) => areaUnderCurve(replacementCurve(score, side, other, steps));
    return {
      simultaneousInsertion: area(insertImage, insertPair),
      simultaneousDeletion: area(deleteImage, deletePair),
      conditionalInsertion: (area(insertImage, pair) + area(insertPair, image)) / 2,
      conditionalDeletion: (area(deleteImage, pair) + area(deletePair, image)) / 2,
    };
  } finally {
    tf.dispose([black, blurredImage, blurredPair]);
  }
}
