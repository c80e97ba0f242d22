// CGC consistency ("Consistent Explanations by Contrastive Learning", Pillai et al. 2022): the map of a
// transformed image should be the transformed map. Scored by their cosine, and by CGC's contrastive loss,
// where each image's transformed map must pick out its own map among the other images' maps.
import * as tf from '@tensorflow/tfjs-core';
import type { Random } from '../../util/random';

export interface SpatialTransform {
  name: string;
  /** Transforms images or maps [N, S, S, C] alike. */
  apply(images: tf.Tensor4D): tf.Tensor4D;
}

export const horizontalFlip: SpatialTransform = { name: 'flip', apply: (images) => tf.reverse(images, 2) };

/** Crops the box [y1, x1, y2, x2] (in [0, 1]) and resizes it back to the full size. */
export function cropTransform(box: [number, number, number, number]): SpatialTransform {
  return {
    name: 'crop',
    apply: (images) =>
      tf.tidy(() => {
        const count = images.shape[0];
        const boxes = tf.tensor2d(Array.from({ length: count }, () => box), [count, 4]);
        const indices = tf.tensor1d(Array.from({ length: count }, (_, i) => i), 'int32');
        return tf.image.cropAndResize(images, boxes, indices, [images.shape[1], images.shape[2]], 'bilinear');
      }),
  };
}

/** A flip, and a random crop of 60–85 % of the side. */
export function consistencyTransforms(random: Random): SpatialTransform[] {
  const side = random.uniform(0.6, 0.85);
  const top = random.uniform(0, 1 - side);
  const left = random.uniform(0, 1 - side);
  return [horizontalFlip, cropTransform([top, left, top + side, left + side])];
}

/** T(h) for an S × S map. */
export function transformMap(map: Float32Array, transform: SpatialTransform): Float32Array {
  const sizePx = Math.round(Math.sqrt(map.length));
  const transformed = tf.tidy(() => transform.apply(tf.tensor4d(map, [1, sizePx, sizePx, 1])));
  const values = transformed.dataSync() as Float32Array;
  transformed.dispose();
  return values;
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    normA += a[i] * a[i];
    normB += b[i] * b[i];
  }
  return dot / Math.max(Math.sqrt(normA * normB), 1e-12);
}

// CGC's temperature for the similarities of maps.
export const consistencyTemperature = 0.5;

/**
 * InfoNCE over images: −log softmax_j(cos(q_i, k_j) / τ)[i], averaged over i, where q_i = T(h(x_i)) and
 * k_j = h(T(x_j)). With one image there are no negatives and the loss is 0.
 */
export function contrastiveConsistencyLoss(queries: Float32Array[], keys: Float32Array[], temperature = consistencyTemperature): number {
  if (queries.length === 0) return 0;
  let total = 0;
  for (let i = 0; i < queries.length; i++) {
    const logits = keys.map((key) => cosine(queries[i], key) / temperature);
    const max = Math.max(...logits);
    const logSum = max + Math.log(logits.reduce((sum, logit) => sum + Math.exp(logit - max), 0));
    total += logSum - logits[i];
  }
  return total / queries.length;
}
