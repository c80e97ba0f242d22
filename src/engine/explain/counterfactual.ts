// Pixel counterfactual, the seed's method and the baseline the region and mask methods are measured against:
// the smallest edit that moves the image into a target cluster.
// min over x' of −log p(target | x') + λ·MSE(x', x) + λ_tv·TV(x') + μ·‖x' − x‖₂, by Adam, x' clamped to [0, 1],
// stopping as soon as the target holds with a margin.
import * as tf from '@tensorflow/tfjs-core';
import { throwIfCancelled, yieldToEventLoop } from '../jobContext';
import type { DeviceKind, ExplainOptions } from '../../protocol/options';
import type { CounterfactualOutcome, ExplainableModel, Explainer } from './explainer';
import { adam, describeEdit, holdsWithMargin, stepsPerYield } from './counterfactualSearch';
import { deviceGraphs, runsOnDevice, scoreImagesOnDevice, withTfjsFallback } from './onDevice';
import { counterfactualOnDevice } from './ortCounterfactual';
import { targetValue } from './target';

const { beta1, beta2, adamEpsilon } = adam;

/** Anisotropic total variation: mean |x[i+1, j] − x[i, j]| + mean |x[i, j+1] − x[i, j]|. */
export function totalVariation(images: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const [, height, width] = images.shape;
    const down = tf.abs(tf.sub(tf.slice(images, [0, 1, 0, 0], [-1, height - 1, -1, -1]), tf.slice(images, [0, 0, 0, 0], [-1, height - 1, -1, -1])));
    const right = tf.abs(tf.sub(tf.slice(images, [0, 0, 1, 0], [-1, -1, width - 1, -1]), tf.slice(images, [0, 0, 0, 0], [-1, -1, width - 1, -1])));
    return tf.add(tf.mean(down), tf.mean(right)) as tf.Scalar;
  });
}

/** Prototype scores of one image and their probabilities softmax(scores / T), [K] each. */
export function prototypeOutputs(net: ExplainableModel, image: tf.Tensor4D): { scores: Float32Array; probabilities: Float32Array } {
  const [scores, probabilities] = tf.tidy(() => {
    const values = net.outputs(net.featureMap(image)).scores;
    return [values, tf.softmax(tf.div(values, net.temperature))];
  });
  const outputs = { scores: scores.dataSync() as Float32Array, probabilities: probabilities.dataSync() as Float32Array };
  tf.dispose([scores, probabilities]);
  return outputs;
}

export type { CounterfactualOutcome };

/** Edits `image` [1, S, S, C] towards prototype `target`; all tensors are freed on return. */
export async function counterfactual(net: ExplainableModel, image: tf.Tensor4D, target: number, options: ExplainOptions, signal?: AbortSignal): Promise<CounterfactualOutcome> {
  const startedAt = performance.now();
  const { counterfactualMseWeight: mseWeight, counterfactualTvWeight: tvWeight, counterfactualL2Weight: l2Weight, counterfactualLearningRate: learningRate } = options;
  const lossOf = (edited: tf.Tensor4D, probabilitiesOut: { value?: tf.Tensor }): tf.Scalar => {
    const logProbabilities = tf.logSoftmax(tf.div(net.outputs(net.featureMap(edited)).scores, net.temperature));
    probabilitiesOut.value = tf.keep(tf.exp(logProbabilities));
    const change = tf.sub(edited, image);
    const squared = tf.sum(tf.square(change));
    const classification = tf.neg(tf.sum(tf.slice(logProbabilities, [0, target], [1, 1])));
    const mse = tf.mul(tf.mean(tf.square(change)), mseWeight);
    // ε keeps the norm's gradient finite at x' = x, where the search starts.
    const l2 = tf.mul(tf.sqrt(tf.add(squared, 1e-12)), l2Weight);
    return tf.addN([classification, mse, tf.mul(totalVariation(edited), tvWeight), l2]) as tf.Scalar;
  };

  const originalProbabilities = prototypeOutputs(net, image).probabilities;
  let edited = tf.clone(image);
  let firstMoment = tf.zerosLike(image);
  let secondMoment = tf.zerosLike(image);
  let steps = 0;
  let converged = false;
  try {
    while (steps < options.counterfactualSteps) {
      const probabilitiesOut: { value?: tf.Tensor } = {};
      const gradient = tf.tidy(() => tf.grad((x: tf.Tensor) => lossOf(x as tf.Tensor4D, probabilitiesOut))(edited));
      const probabilities = probabilitiesOut.value!.dataSync() as Float32Array;
      probabilitiesOut.value!.dispose();
      if (holdsWithMargin(probabilities, target, options.counterfactualMargin)) {
        gradient.dispose();
        converged = true;
        break;
      }
      steps++;
      const [nextEdited, nextFirst, nextSecond] = tf.tidy(() => {
        // Adam: m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g², x ← clamp(x − lr·m̂ / (√v̂ + ε), 0, 1)
        const first = tf.add(tf.mul(firstMoment, beta1), tf.mul(gradient, 1 - beta1));
        const second = tf.add(tf.mul(secondMoment, beta2), tf.mul(tf.square(gradient), 1 - beta2));
        const update = tf.div(tf.div(first, 1 - beta1 ** steps), tf.add(tf.sqrt(tf.div(second, 1 - beta2 ** steps)), adamEpsilon));
        return [tf.clipByValue(tf.sub(edited, tf.mul(update, learningRate)), 0, 1), first, second];
      });
      tf.dispose([gradient, edited, firstMoment, secondMoment]);
      [edited, firstMoment, secondMoment] = [nextEdited as tf.Tensor4D, nextFirst as tf.Tensor4D, nextSecond as tf.Tensor4D];
      if (steps % stepsPerYield === 0 && signal) {
        await yieldToEventLoop();
        throwIfCancelled(signal);
      }
    }
    const { probabilities, scores } = prototypeOutputs(net, edited);
    return describeEdit({ pixels: Float32Array.from(edited.dataSync() as Float32Array), original: image.dataSync() as Float32Array, channels: image.shape[3], probabilities, scores, originalProbabilities, target, steps, converged, startedAt });
  } finally {
    tf.dispose([edited, firstMoment, secondMoment]);
  }
}

/** The diff as a heatmap: max over channels of |x' − x|, scaled so that the largest change is 1. */
export function differenceMap(outcome: CounterfactualOutcome, original: Float32Array, channels: number): Float32Array {
  const pixels = original.length / channels;
  const map = new Float32Array(pixels);
  for (let pixel = 0; pixel < pixels; pixel++) {
    for (let channel = 0; channel < channels; channel++) {
      map[pixel] = Math.max(map[pixel], Math.abs(outcome.pixels[pixel * channels + channel] - original[pixel * channels + channel]));
    }
  }
  return outcome.maxAbsoluteChange > 0 ? map.map((value) => value / outcome.maxAbsoluteChange) : map;
}

export const counterfactualExplainer: Explainer = {
  method: 'counterfactual-pixel',
  description: 'Pixel counterfactual (the seed\'s): the smallest edit (Adam on −log p + λ·MSE + λ_tv·TV + 0.01·‖Δ‖₂) that moves the image into the target cluster',
  targets: ['prototype'],
  defaultTarget: 'nearest-other-cluster',
  async explain({ net, image, target, options, signal, log }) {
    if (target.kind !== 'prototype') throw new Error('a counterfactual needs a target cluster');
    const onTfjs = () => counterfactual(net, image, target.prototype, options, signal);
    const onDevice = () => counterfactualOnDevice(deviceGraphs(net), image.dataSync() as Float32Array, image.shape[1], net.temperature, target.prototype, options, signal);
    const { device, ...outcome }: CounterfactualOutcome & { device?: DeviceKind } = !runsOnDevice(net) ? await onTfjs() : net.model ? await withTfjsFallback('The counterfactual', log, onDevice, onTfjs) : await onDevice();
    const heatmap = differenceMap(outcome, image.dataSync() as Float32Array, image.shape[3]);
    // A frozen import scores on the device (tfjs may not run it).
    const score = net.graphs ? (await scoreImagesOnDevice(net, image.dataSync() as Float32Array, 1, image.shape[1])).scores[target.prototype] : targetValue(net, image, target);
    return { heatmap, score, counterfactual: outcome, device };
  },
};
