import * as tf from '@tensorflow/tfjs-core';

/**
 * Sinkhorn-Knopp as in SwAV's `distributed_sinkhorn`: Q = exp(scores/ε)ᵀ / ΣQ, then alternately
 * make every prototype (row) hold 1/K and every sample (column) 1/B of the mass; return B·Qᵀ,
 * so each sample's soft assignment sums to 1.
 */
export function sinkhorn(scores: tf.Tensor2D, epsilon = 0.05, iterations = 3): tf.Tensor2D {
  return tf.tidy(() => {
    let q = tf.transpose(tf.exp(tf.div(scores, epsilon))) as tf.Tensor2D; // K × B
    const [prototypes, samples] = q.shape;
    q = tf.div(q, tf.sum(q));
    for (let i = 0; i < iterations; i++) {
      q = tf.div(tf.div(q, tf.sum(q, 1, true)), prototypes);
      q = tf.div(tf.div(q, tf.sum(q, 0, true)), samples);
    }
    return tf.transpose(tf.mul(q, samples)) as tf.Tensor2D;
  });
}
