// Shared by the occlusion methods: score many masked copies of one image, building each batch only when it runs.
import * as tf from '@tensorflow/tfjs-core';
import type { ExplainableModel } from './explainer';
import { cosineRows, featuresOf, prototypeScoresOf, type Reference } from './target';

/**
 * The target's value for `compose(image, masks)` over every mask [count, S, S, 1], `batchSize` masks per
 * forward pass.
 */
export function scoreMasked(
  net: ExplainableModel,
  image: tf.Tensor4D,
  masks: Float32Array,
  count: number,
  reference: Reference,
  batchSize: number,
  compose: (image: tf.Tensor4D, masks: tf.Tensor4D) => tf.Tensor4D = (x, m) => tf.mul(x, tf.sub(1, m)) as tf.Tensor4D,
): Float32Array {
  const sizePx = image.shape[1];
  const pixels = sizePx * sizePx;
  const values = new Float32Array(count);
  for (let start = 0; start < count; start += batchSize) {
    const size = Math.min(batchSize, count - start);
    const chunk = tf.tidy(() => {
      const batchMasks = tf.tensor4d(masks.subarray(start * pixels, (start + size) * pixels), [size, sizePx, sizePx, 1]);
      const images = compose(image, batchMasks);
      return reference.kind === 'prototype' ? prototypeScoresOf(net, images, reference.prototype) : cosineRows(featuresOf(net, images), reference.features);
    });
    values.set(chunk.dataSync() as Float32Array, start);
    chunk.dispose();
  }
  return values;
}
