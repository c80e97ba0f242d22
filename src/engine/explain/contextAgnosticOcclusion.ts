// Context-agnostic occlusion (the seed): a patch's own contribution, free of its context, is the features
// of the patch alone minus those of the image without it; scored by the cosine with the other image.
import * as tf from '@tensorflow/tfjs-core';
import { normalizeArray, type ExplainableModel, type Explainer } from './explainer';
import { batchedFeatures, cosineRows, featuresOf, targetValue } from './target';
import { occlusionGeometry, patchMasks, spreadOverMasks } from './views';

/** cos(f(x ⊙ m) − f(x ⊙ (1 − m)), f(other)) for every patch m, spread over the pixels it covers. */
function contextAgnosticMap(net: ExplainableModel, image: tf.Tensor4D, otherFeatures: tf.Tensor2D, patchPx: number, stridePx: number, batchSize: number): Float32Array {
  const sizePx = image.shape[1];
  const pixels = sizePx * sizePx;
  const { masks, count } = patchMasks(sizePx, patchPx, stridePx);
  const scores = new Float32Array(count);
  // Each chunk holds its patches alone, then the same images without them: one forward pass for both.
  const chunkSize = Math.max(1, Math.floor(batchSize / 2));
  for (let start = 0; start < count; start += chunkSize) {
    const size = Math.min(chunkSize, count - start);
    const chunk = tf.tidy(() => {
      const batchMasks = tf.tensor4d(masks.subarray(start * pixels, (start + size) * pixels), [size, sizePx, sizePx, 1]);
      const both = tf.concat([tf.mul(image, batchMasks), tf.mul(image, tf.sub(1, batchMasks))], 0) as tf.Tensor4D;
      const features = batchedFeatures(net, both, 2 * size);
      const contribution = tf.sub(tf.slice(features, [0, 0], [size, -1]), tf.slice(features, [size, 0], [size, -1])) as tf.Tensor2D;
      return cosineRows(contribution, otherFeatures);
    });
    scores.set(chunk.dataSync() as Float32Array, start);
    chunk.dispose();
  }
  return normalizeArray(spreadOverMasks(scores, masks, pixels));
}

export const contextAgnosticOcclusion: Explainer = {
  method: 'context-agnostic-occlusion',
  description: 'Context-agnostic occlusion: a patch alone against the image without it, scored by the cosine with the other image',
  targets: ['similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options }) {
    if (target.kind !== 'similarity') throw new Error('context-agnostic occlusion explains a similarity');
    const { patchPx, stridePx } = occlusionGeometry(image.shape[1], options.occlusionPatchPx, options.occlusionStridePx);
    const imageFeatures = featuresOf(net, image);
    const pairFeatures = featuresOf(net, target.pair);
    try {
      return {
        heatmap: contextAgnosticMap(net, image, pairFeatures, patchPx, stridePx, options.batchSize),
        pairHeatmap: contextAgnosticMap(net, target.pair, imageFeatures, patchPx, stridePx, options.batchSize),
        score: targetValue(net, image, target),
      };
    } finally {
      tf.dispose([imageFeatures, pairFeatures]);
    }
  },
};
