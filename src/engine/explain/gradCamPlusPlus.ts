// Grad-CAM++ (Chattopadhyay et al. 2018): channel weights from positive gradients, each pixel weighted by α.
import * as tf from '@tensorflow/tfjs-core';
import { camExplainer } from './cam';

// α_ij = g² / (2g² + Σ_ab A_ab · g³), w_c = Σ_ij α_ij · relu(g_ij), as pytorch-grad-cam computes it
export const gradCamPlusPlus = camExplainer('gradcam++', 'Grad-CAM++: channel weights from positive gradients, with per-pixel α', (activations, gradients) => {
  const squared = tf.square(gradients);
  const cubed = tf.mul(squared, gradients);
  const activationSums = tf.sum(activations, [1, 2], true);
  const alpha = tf.div(squared, tf.add(tf.add(tf.mul(squared, 2), tf.mul(activationSums, cubed)), 1e-7));
  const safeAlpha = tf.where(tf.notEqual(gradients, 0), alpha, tf.zerosLike(alpha));
  return tf.sum(tf.mul(safeAlpha, tf.relu(gradients)), [1, 2], true);
});
