// The scalars explanations explain, as plain functions of tensors, and batched scoring for the methods
// that perturb an image many times (occlusion, metrics): never one forward pass per perturbation.
import * as tf from '@tensorflow/tfjs-core';
import type { ExplainableModel, Target } from './explainer';

/** Backbone features [N, F] of images [N, S, S, C]. */
export function featuresOf(net: ExplainableModel, images: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => net.outputs(net.featureMap(images)).features);
}

/** Prototype `prototype`'s score for every image, [N]. */
export function prototypeScoresOf(net: ExplainableModel, images: tf.Tensor4D, prototype: number): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(tf.slice(net.outputs(net.featureMap(images)).scores, [0, prototype], [-1, 1]), [-1]) as tf.Tensor1D);
}

/** cos(a_i, b_i) per row; `b` may hold a single row, compared with every row of `a`. */
export function cosineRows(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const dot = tf.sum(tf.mul(a, b), 1);
    const norms = tf.mul(tf.norm(a, 'euclidean', 1), tf.norm(b, 'euclidean', 1));
    return tf.div(dot, tf.maximum(norms, 1e-12)) as tf.Tensor1D;
  });
}

/** What many variants of one image are scored against: a prototype, or fixed reference features [1, F]. */
export type Reference = { kind: 'prototype'; prototype: number } | { kind: 'features'; features: tf.Tensor2D };

/** Runs `images` through the network `batchSize` at a time and returns one value per image. */
export function batchedValues(images: tf.Tensor4D, batchSize: number, valuesOf: (batch: tf.Tensor4D) => tf.Tensor1D): Float32Array {
  const count = images.shape[0];
  const values = new Float32Array(count);
  for (let start = 0; start < count; start += batchSize) {
    const size = Math.min(batchSize, count - start);
    const chunk = tf.tidy(() => valuesOf(tf.slice(images, [start, 0, 0, 0], [size, -1, -1, -1])));
    values.set(chunk.dataSync() as Float32Array, start);
    chunk.dispose();
  }
  return values;
}

/** The target's value for every image: a prototype score, or the cosine to the reference features. */
export function scoreAgainst(net: ExplainableModel, images: tf.Tensor4D, reference: Reference, batchSize: number): Float32Array {
  return batchedValues(images, batchSize, (batch) =>
    reference.kind === 'prototype' ? prototypeScoresOf(net, batch, reference.prototype) : cosineRows(featuresOf(net, batch), reference.features),
  );
}

/** Backbone features of every image, batched, [N, F]. */
export function batchedFeatures(net: ExplainableModel, images: tf.Tensor4D, batchSize: number): tf.Tensor2D {
  const count = images.shape[0];
  if (count <= batchSize) return featuresOf(net, images);
  const parts: tf.Tensor2D[] = [];
  for (let start = 0; start < count; start += batchSize) {
    const size = Math.min(batchSize, count - start);
    parts.push(tf.tidy(() => featuresOf(net, tf.slice(images, [start, 0, 0, 0], [size, -1, -1, -1]))));
  }
  const joined = tf.concat(parts, 0);
  tf.dispose(parts);
  return joined;
}

/** cos(f(a_i), f(b_i)) for every row; `b` may be a single image compared with all of `a`. */
export function pairedSimilarities(net: ExplainableModel, a: tf.Tensor4D, b: tf.Tensor4D, batchSize: number): Float32Array {
  if (b.shape[0] === 1) {
    const reference = featuresOf(net, b);
    try {
      return scoreAgainst(net, a, { kind: 'features', features: reference }, batchSize);
    } finally {
      reference.dispose();
    }
  }
  const featuresA = batchedFeatures(net, a, batchSize);
  const featuresB = batchedFeatures(net, b, batchSize);
  const similarities = cosineRows(featuresA, featuresB);
  const values = similarities.dataSync() as Float32Array;
  tf.dispose([featuresA, featuresB, similarities]);
  return values;
}

/** The target's value at the unmodified image (and pair). */
export function targetValue(net: ExplainableModel, image: tf.Tensor4D, target: Target): number {
  const value = tf.tidy(() =>
    target.kind === 'prototype' ? prototypeScoresOf(net, image, target.prototype) : cosineRows(featuresOf(net, image), featuresOf(net, target.pair)),
  );
  const result = value.dataSync()[0];
  value.dispose();
  return result;
}
