// Context-agnostic occlusion (the seed): a patch's own contribution, free of its context, is the features
// of the patch alone minus those of the image without it; scored by the cosine with the other image. A frozen
// import runs its forward passes on onnxruntime.
import * as tf from '@tensorflow/tfjs-core';
import { normalizeArray, type ExplainableModel, type Explainer } from './explainer';
import { batchedFeatures, cosineRows, featuresOf, targetValue } from './target';
import { occlusionGeometry, patchMasks, spreadOverMasks } from './views';
import { scoreImagesOnDevice } from './onDevice';

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

/** contextAgnosticMap for a frozen import, through its forward graph on onnxruntime (tfjs may not run it); NHWC pixels. */
async function contextAgnosticMapOnDevice(net: ExplainableModel, image: Float32Array, sizePx: number, otherFeatures: Float32Array, patchPx: number, stridePx: number, batchSize: number): Promise<Float32Array> {
  const pixels = sizePx * sizePx;
  const channels = image.length / pixels;
  const { masks, count } = patchMasks(sizePx, patchPx, stridePx);
  const scores = new Float32Array(count);
  const chunkSize = Math.max(1, Math.floor(batchSize / 2));
  const otherNorm = Math.hypot(...otherFeatures);
  for (let start = 0; start < count; start += chunkSize) {
    const size = Math.min(chunkSize, count - start);
    // The patches alone, then the images without them.
    const both = new Float32Array(2 * size * image.length);
    for (let n = 0; n < size; n++) {
      const mask = (start + n) * pixels;
      for (let p = 0; p < pixels; p++) {
        for (let c = 0; c < channels; c++) {
          const value = image[p * channels + c];
          both[n * image.length + p * channels + c] = value * masks[mask + p];
          both[(size + n) * image.length + p * channels + c] = value * (1 - masks[mask + p]);
        }
      }
    }
    const { features } = await scoreImagesOnDevice(net, both, 2 * size, sizePx, 2 * chunkSize);
    const width = otherFeatures.length;
    for (let n = 0; n < size; n++) {
      let dot = 0;
      let squares = 0;
      for (let f = 0; f < width; f++) {
        const contribution = features[n * width + f] - features[(size + n) * width + f];
        dot += contribution * otherFeatures[f];
        squares += contribution * contribution;
      }
      // as cosineRows: a·b / max(‖a‖‖b‖, 1e-12)
      scores[start + n] = dot / Math.max(Math.sqrt(squares) * otherNorm, 1e-12);
    }
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
    if (net.graphs) {
      // A frozen import: every forward pass on onnxruntime.
      const sizePx = image.shape[1];
      const [imagePixels, pairPixels] = [image.dataSync() as Float32Array, target.pair.dataSync() as Float32Array];
      const both = new Float32Array(imagePixels.length * 2);
      both.set(imagePixels);
      both.set(pairPixels, imagePixels.length);
      const { features, device } = await scoreImagesOnDevice(net, both, 2, sizePx);
      const width = features.length / 2;
      const [imageFeatures, pairFeatures] = [features.slice(0, width), features.slice(width)];
      const score = tf.tidy(() => cosineRows(tf.tensor2d(imageFeatures, [1, width]), tf.tensor2d(pairFeatures, [1, width])).dataSync()[0]);
      return {
        heatmap: await contextAgnosticMapOnDevice(net, imagePixels, sizePx, pairFeatures, patchPx, stridePx, options.batchSize),
        pairHeatmap: await contextAgnosticMapOnDevice(net, pairPixels, sizePx, imageFeatures, patchPx, stridePx, options.batchSize),
        score,
        device,
      };
    }
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
