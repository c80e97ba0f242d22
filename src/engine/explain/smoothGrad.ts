// SmoothGrad (Smilkov et al. 2017): gradients averaged over noisy copies of the image, all in one batch.
import * as tf from '@tensorflow/tfjs-core';
import type { Explainer } from './explainer';
import { gradientTimesInput, inputGradients, meanGradient } from './gradients';
import { targetValue } from './target';

/** `count` copies of `image` plus N(0, σ) noise, σ = share · (max − min) of the image. */
function noisyCopies(image: tf.Tensor4D, count: number, share: number, seed: number): tf.Tensor4D {
  return tf.tidy(() => {
    const range = tf.sub(tf.max(image), tf.min(image)).dataSync()[0];
    const sigma = share * Math.max(range, 1e-3);
    return tf.add(tf.tile(image, [count, 1, 1, 1]), tf.randomNormal([count, ...image.shape.slice(1)], 0, sigma, 'float32', seed)) as tf.Tensor4D;
  });
}

export const smoothGrad: Explainer = {
  method: 'smoothgrad',
  description: 'SmoothGrad: input × gradient averaged over noisy copies of the image',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options, seed }) {
    const count = options.smoothGradSamples;
    const images = noisyCopies(image, count, options.smoothGradNoise, seed);
    const pairs = target.kind === 'similarity' ? noisyCopies(target.pair, count, options.smoothGradNoise, seed + 1) : undefined;
    const gradients = inputGradients(net, target.kind === 'prototype' ? target : { kind: 'similarity' }, images, pairs);
    const imageGradient = meanGradient(gradients.images);
    const pairGradient = gradients.pairs ? meanGradient(gradients.pairs) : undefined;
    const heatmap = gradientTimesInput(image, imageGradient);
    const pairHeatmap = target.kind === 'similarity' && pairGradient ? gradientTimesInput(target.pair, pairGradient) : undefined;
    tf.dispose([images, pairs ?? [], gradients.images, gradients.pairs ?? [], imageGradient, pairGradient ?? []]);
    return { heatmap, pairHeatmap, score: targetValue(net, image, target) };
  },
};
