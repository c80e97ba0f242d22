// Interaction-CAM (the seed "Visualizing and Understanding Self-Supervised Vision Learning"): CAM of the two
// images' cosine, with channels re-weighted by the product of both images' pooled features, so that only
// channels active in both images light up.
import * as tf from '@tensorflow/tfjs-core';
import type { ActivationWeighting } from './cam';
import { camExplainer } from './cam';

function interaction(pool: (activations: tf.Tensor4D) => tf.Tensor): ActivationWeighting {
  // w_n,c,ij = relu(g_n,c,ij) · pool(A_0)_c · pool(A_1)_c; rows 0 and 1 are the image and its pair
  return (activations, gradients) => {
    const pooled = pool(activations);
    const joint = tf.mul(tf.slice(pooled, [0, 0, 0, 0], [1, -1, -1, -1]), tf.slice(pooled, [1, 0, 0, 0], [1, -1, -1, -1]));
    return tf.mul(tf.relu(gradients), joint);
  };
}

export const interactionCamMean = camExplainer(
  'interaction-cam-mean',
  'Interaction-CAM (mean): CAM of the pair cosine, channels weighted by the product of both images’ mean-pooled features',
  interaction((activations) => tf.mean(activations, [1, 2], true)),
  ['similarity'],
);

export const interactionCamMax = camExplainer(
  'interaction-cam-max',
  'Interaction-CAM (max): CAM of the pair cosine, channels weighted by the product of both images’ max-pooled features',
  interaction((activations) => tf.max(activations, [1, 2], true)),
  ['similarity'],
);
