// Input × gradient (Shrikumar et al. 2016): how much each pixel's value, times its gradient, moves the target.
import * as tf from '@tensorflow/tfjs-core';
import type { Explainer } from './explainer';
import { gradientTimesInput, inputGradients } from './gradients';
import { targetValue } from './target';

export const inputXGradient: Explainer = {
  method: 'input-x-gradient',
  description: 'Input × gradient: each pixel times the gradient of the target at it',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target }) {
    const pair = target.kind === 'similarity' ? target.pair : undefined;
    const gradients = inputGradients(net, target.kind === 'prototype' ? target : { kind: 'similarity' }, image, pair);
    const heatmap = gradientTimesInput(image, gradients.images);
    const pairHeatmap = pair && gradients.pairs ? gradientTimesInput(pair, gradients.pairs) : undefined;
    tf.dispose([gradients.images, gradients.pairs ?? []]);
    return { heatmap, pairHeatmap, score: targetValue(net, image, target) };
  },
};

