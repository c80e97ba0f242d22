import * as tf from '@tensorflow/tfjs-core';
// Gradients are not registered by tfjs-core's main entry; training and explanations need them.
import '@tensorflow/tfjs-core/dist/register_all_gradients';

/** Identity in the forward pass, zero gradient in the backward pass (tfjs has no stop_gradient). */
export const stopGradient = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(inputs[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.zerosLike(dy as tf.Tensor),
})) as unknown as <T extends tf.Tensor>(x: T) => T;
