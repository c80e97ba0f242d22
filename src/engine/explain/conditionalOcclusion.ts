// Conditional occlusion (Zeiler & Fergus 2014, conditioned on a second image as in the seed): slide a black
// square over one image and score the drop in the target; the other image stays intact.
import * as tf from '@tensorflow/tfjs-core';
import { normalizeArray, type ExplainableModel, type Explainer } from './explainer';
import { scoreMasked } from './occlusion';
import { featuresOf, scoreAgainst, targetValue, type Reference } from './target';
import { occlusionGeometry, patchMasks, spreadOverMasks } from './views';

/** Per pixel, the mean drop of the target over the patches that cover it; a rise counts as no drop (as CAM's ReLU). */
export function occlusionMap(net: ExplainableModel, image: tf.Tensor4D, reference: Reference, patchPx: number, stridePx: number, batchSize: number): Float32Array {
  const sizePx = image.shape[1];
  const { masks, count } = patchMasks(sizePx, patchPx, stridePx);
  const base = scoreAgainst(net, image, reference, 1)[0];
  const scores = scoreMasked(net, image, masks, count, reference, batchSize);
  return normalizeArray(spreadOverMasks(scores.map((score) => Math.max(0, base - score)), masks, sizePx * sizePx));
}

export const conditionalOcclusion: Explainer = {
  method: 'conditional-occlusion',
  description: 'Conditional occlusion: the drop in the target when a square of one image is blacked out, the other image intact',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options }) {
    const { patchPx, stridePx } = occlusionGeometry(image.shape[1], options.occlusionPatchPx, options.occlusionStridePx);
    if (target.kind === 'prototype') {
      return { heatmap: occlusionMap(net, image, target, patchPx, stridePx, options.batchSize), score: targetValue(net, image, target) };
    }
    const imageFeatures = featuresOf(net, image);
    const pairFeatures = featuresOf(net, target.pair);
    try {
      return {
        heatmap: occlusionMap(net, image, { kind: 'features', features: pairFeatures }, patchPx, stridePx, options.batchSize),
        pairHeatmap: occlusionMap(net, target.pair, { kind: 'features', features: imageFeatures }, patchPx, stridePx, options.batchSize),
        score: targetValue(net, image, target),
      };
    } finally {
      tf.dispose([imageFeatures, pairFeatures]);
    }
  },
};
