// Averaged transforms (the seed's "integrated transforms"): gradients averaged along straight paths from the
// image to colour-augmented copies of it, so the map reflects what the target is invariant to along the way.
// Colour transforms keep every pixel in place, which a path between two images needs.
import * as tf from '@tensorflow/tfjs-core';
import { createRandom } from '../util/random';
import type { Explainer } from './explainer';
import { gradientTimesInput, inputGradients, meanGradient } from './gradients';
import { targetValue } from './target';
import { colourViews } from './views';

/** λ·x + (1 − λ)·a for every view a and λ = 1, (m−1)/m, …, 1/m: [views · m, S, S, C]. */
function interpolations(image: tf.Tensor4D, views: tf.Tensor4D, steps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const lambdas = Array.from({ length: steps }, (_, step) => (steps - step) / steps);
    const paths = lambdas.map((lambda) => tf.add(tf.mul(image, lambda), tf.mul(views, 1 - lambda)));
    return tf.concat(paths, 0) as tf.Tensor4D;
  });
}

export const averagedTransforms: Explainer = {
  method: 'averaged-transforms',
  description: 'Averaged transforms: input × gradient averaged along paths from the image to colour-augmented copies',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options, seed }) {
    const random = createRandom(seed);
    const views = colourViews(image, options.averagedTransformViews, random);
    const mixed = interpolations(image, views, options.averagedTransformSteps);
    let pairViews: tf.Tensor4D | undefined;
    let pairMixed: tf.Tensor4D | undefined;
    if (target.kind === 'similarity') {
      pairViews = colourViews(target.pair, options.averagedTransformViews, random);
      pairMixed = interpolations(target.pair, pairViews, options.averagedTransformSteps);
    }
    const gradients = inputGradients(net, target.kind === 'prototype' ? target : { kind: 'similarity' }, mixed, pairMixed);
    const imageGradient = meanGradient(gradients.images);
    const pairGradient = gradients.pairs ? meanGradient(gradients.pairs) : undefined;
    const heatmap = gradientTimesInput(image, imageGradient);
    const pairHeatmap = target.kind === 'similarity' && pairGradient ? gradientTimesInput(target.pair, pairGradient) : undefined;
    tf.dispose([views, mixed, pairViews ?? [], pairMixed ?? [], gradients.images, gradients.pairs ?? [], imageGradient, pairGradient ?? []]);
    return { heatmap, pairHeatmap, score: targetValue(net, image, target) };
  },
};
