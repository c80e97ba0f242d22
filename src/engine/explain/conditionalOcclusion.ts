// Conditional occlusion (Zeiler & Fergus 2014, conditioned on a second image as in the seed): slide a black
// square over one image and score the drop in the target; the other image stays intact. For the engine's own
// network the masked copies run on onnxruntime's device (occlusion.ts), falling back to tfjs.
import * as tf from '@tensorflow/tfjs-core';
import type { DeviceKind } from '../../protocol/options';
import type { LogLevel } from '../../protocol/engine';
import { normalizeArray, type ExplainableModel, type Explainer } from './explainer';
import { scoreMasked, scoreMaskedOnDevice } from './occlusion';
import { deviceGraphs, runsOnDevice, scoreImagesOnDevice, withTfjsFallback } from './onDevice';
import { cosineRows, featuresOf, scoreAgainst, targetValue, type Reference } from './target';
import { occlusionGeometry, patchMasks, spreadOverMasks } from './views';

/** Per pixel, the mean drop of the target over the patches that cover it; a rise counts as no drop (as CAM's ReLU). */
export async function occlusionMap(
  net: ExplainableModel,
  image: tf.Tensor4D,
  reference: Reference,
  patchPx: number,
  stridePx: number,
  batchSize: number,
  log?: (level: LogLevel, message: string) => void,
): Promise<{ heatmap: Float32Array; base: number; device?: DeviceKind }> {
  const sizePx = image.shape[1];
  const pixels = sizePx * sizePx;
  const { masks, count } = patchMasks(sizePx, patchPx, stridePx);
  type Scored = { base: number; scores: Float32Array; device?: DeviceKind };
  const onTfjs = async (): Promise<Scored> => ({ base: scoreAgainst(net, image, reference, 1)[0], scores: scoreMasked(net, image, masks, count, reference, batchSize) });
  const onDevice = async (): Promise<Scored> => {
    // One more, empty mask: the unmasked image's value comes from the same runs.
    const withBase = new Float32Array(masks.length + pixels);
    withBase.set(masks);
    const deviceReference = reference.kind === 'prototype' ? reference : { kind: 'features' as const, features: reference.features.dataSync() as Float32Array };
    const { values, device } = await scoreMaskedOnDevice(deviceGraphs(net), image.dataSync() as Float32Array, sizePx, withBase, count + 1, deviceReference, batchSize);
    return { base: values[count], scores: values.subarray(0, count), device };
  };
  // A frozen import runs on the device only (tfjs may not run it).
  const { base, scores, device } = !runsOnDevice(net) ? await onTfjs() : net.model ? await withTfjsFallback('Conditional occlusion', log, onDevice, onTfjs) : await onDevice();
  return { heatmap: normalizeArray(spreadOverMasks(scores.map((score) => Math.max(0, base - score)), masks, pixels)), base, device };
}

export const conditionalOcclusion: Explainer = {
  method: 'conditional-occlusion',
  description: 'Conditional occlusion: the drop in the target when a square of one image is blacked out, the other image intact',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options, log }) {
    const { patchPx, stridePx } = occlusionGeometry(image.shape[1], options.occlusionPatchPx, options.occlusionStridePx);
    if (target.kind === 'prototype') {
      const { heatmap, base, device } = await occlusionMap(net, image, target, patchPx, stridePx, options.batchSize, log);
      return { heatmap, device, score: net.graphs ? base : targetValue(net, image, target) };
    }
    const deviceFeatures = async (x: tf.Tensor4D) => {
      const { features } = await scoreImagesOnDevice(net, x.dataSync() as Float32Array, 1, x.shape[1]);
      return tf.tensor2d(features, [1, features.length]);
    };
    const imageFeatures = net.graphs ? await deviceFeatures(image) : featuresOf(net, image);
    const pairFeatures = net.graphs ? await deviceFeatures(target.pair) : featuresOf(net, target.pair);
    try {
      const first = await occlusionMap(net, image, { kind: 'features', features: pairFeatures }, patchPx, stridePx, options.batchSize, log);
      const second = await occlusionMap(net, target.pair, { kind: 'features', features: imageFeatures }, patchPx, stridePx, options.batchSize, log);
      const score = net.graphs ? tf.tidy(() => cosineRows(imageFeatures, pairFeatures).dataSync()[0]) : targetValue(net, image, target);
      return { heatmap: first.heatmap, pairHeatmap: second.heatmap, device: first.device, score };
    } finally {
      tf.dispose([imageFeatures, pairFeatures]);
    }
  },
};
