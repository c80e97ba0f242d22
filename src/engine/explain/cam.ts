// The CAM family's shared plumbing (as pytorch-grad-cam's BaseCAM): the target's gradient at the last
// convolutional stage, ReLU of the weighted activations, upsampling and normalisation. A variant only says
// how it weights the activations.
import * as tf from '@tensorflow/tfjs-core';
import type { ExplainMethod } from '../../protocol/options';
import { imageAndPair, imageSizeOf, normalizeMaps, readMaps, upsampleMaps, type ExplainableModel, type Explainer, type Target, type TargetKind } from './explainer';
import { cosineRows } from './target';

/** Weights on the activations A [N, h, w, C] from A and the target's gradients G; broadcastable to A. */
export type ActivationWeighting = (activations: tf.Tensor4D, gradients: tf.Tensor4D) => tf.Tensor;

/** The target from the feature map of the image (and its pair, as row 1): a prototype's score or the pair's cosine. */
export function targetFromFeatureMap(net: ExplainableModel, target: Target, map: tf.Tensor4D): tf.Scalar {
  const { features, scores } = net.outputs(map);
  if (target.kind === 'prototype') return tf.sum(tf.slice(scores, [0, target.prototype], [-1, 1]));
  return tf.sum(cosineRows(tf.slice(features, [0, 0], [1, -1]), tf.slice(features, [1, 0], [1, -1])));
}

/** CAM maps [N, S, S, 1] in [0, 1] for the image (and pair) batch, and the target's value. */
export function classActivationMaps(net: ExplainableModel, target: Target, image: tf.Tensor4D, weighting: ActivationWeighting): { maps: tf.Tensor4D; score: tf.Scalar } {
  return tf.tidy(() => {
    const batch = imageAndPair(image, target);
    const activations = net.featureMap(batch);
    const { value, grad } = tf.valueAndGrad((map: tf.Tensor) => targetFromFeatureMap(net, target, map as tf.Tensor4D))(activations);
    const cams = tf.relu(tf.sum(tf.mul(weighting(activations, grad as tf.Tensor4D), activations), -1, true)) as tf.Tensor4D;
    return { maps: normalizeMaps(upsampleMaps(cams, imageSizeOf(image))) as tf.Tensor4D, score: value };
  });
}

/** An Explainer from a weighting: the whole of a CAM variant. */
export function camExplainer(method: ExplainMethod, description: string, weighting: ActivationWeighting, targets: readonly TargetKind[] = ['prototype', 'similarity']): Explainer {
  return {
    method,
    description,
    targets,
    defaultTarget: targets.includes('prototype') ? 'assigned' : 'neighbour',
    async explain({ net, image, target }) {
      const { maps, score } = classActivationMaps(net, target, image, weighting);
      const value = score.dataSync()[0];
      score.dispose();
      const [heatmap, pairHeatmap] = readMaps(maps);
      return { heatmap, pairHeatmap, score: value };
    },
  };
}
