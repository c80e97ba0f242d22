// Gradients of the target with respect to the input pixels, shared by input × gradient, SmoothGrad and
// averaged transforms: one backward pass for a whole batch of (possibly perturbed) copies.
import * as tf from '@tensorflow/tfjs-core';
import { normalizeMaps, type ExplainableModel } from './explainer';
import { cosineRows, featuresOf, prototypeScoresOf } from './target';

export type GradientTarget = { kind: 'prototype'; prototype: number } | { kind: 'similarity' };

/**
 * ∇ of Σ_i y_i with respect to every image, where y_i is prototype k's score of image i, or, for similarity,
 * cos(f(image_i), f(pair_i)) with the gradient reaching both images.
 */
export function inputGradients(net: ExplainableModel, target: GradientTarget, images: tf.Tensor4D, pairs?: tf.Tensor4D): { images: tf.Tensor4D; pairs?: tf.Tensor4D } {
  return tf.tidy(() => {
    if (target.kind === 'prototype') {
      return { images: tf.grad((x: tf.Tensor) => tf.sum(prototypeScoresOf(net, x as tf.Tensor4D, target.prototype)))(images) as tf.Tensor4D };
    }
    if (!pairs) throw new Error('A similarity gradient needs the pair images.');
    const count = images.shape[0];
    // One forward pass over both batches; rows i and count + i are compared.
    const [imageGradients, pairGradients] = tf.grads((x: tf.Tensor, y: tf.Tensor) => {
      const features = featuresOf(net, tf.concat([x as tf.Tensor4D, y as tf.Tensor4D], 0));
      return tf.sum(cosineRows(tf.slice(features, [0, 0], [count, -1]), tf.slice(features, [count, 0], [count, -1])));
    })([images, pairs]);
    return { images: imageGradients as tf.Tensor4D, pairs: pairGradients as tf.Tensor4D };
  });
}

/** max_c |x ⊙ ∇|, normalised to [0, 1], as S·S values: the seed's saliency for gradient methods. */
export function gradientTimesInput(image: tf.Tensor4D, gradient: tf.Tensor4D): Float32Array {
  const map = tf.tidy(() => normalizeMaps(tf.max(tf.abs(tf.mul(image, gradient)), -1)));
  const values = map.dataSync() as Float32Array;
  map.dispose();
  return values;
}

/** Mean over the batch, kept as [1, …]. */
export function meanGradient(gradients: tf.Tensor4D): tf.Tensor4D {
  // As a product with a row of 1/N: the wasm backend's batch-axis mean (an XNNPACK average pool with one
  // channel per value) fails with "memory access out of bounds" past about 16k values per image (96 px RGB).
  return tf.tidy(() => {
    const [count, ...shape] = gradients.shape;
    const rows = tf.reshape(gradients, [count, -1]) as tf.Tensor2D;
    return tf.reshape(tf.matMul(tf.fill([1, count], 1 / count) as tf.Tensor2D, rows), [1, ...shape]) as tf.Tensor4D;
  });
}
