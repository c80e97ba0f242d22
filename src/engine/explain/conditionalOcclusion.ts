// Conditional occlusion (Zeiler & Fergus 2014, conditioned on a second image as in the seed): slide a black
// square over one image and score the drop in the target; the other image stays intact. For the engine's own
// masked copies run on onnxruntime's device (occlusion.ts).
import type { DeviceKind } from '../../protocol/options';
import { normalizeArray, type ExplainableModel, type Explainer, type Pixels } from './explainer';
import { scoreMasked } from './occlusion';
import { scoreImagesOnDevice } from './onDevice';
import { cosine, type Reference } from './target';
import { occlusionGeometry, patchMasks, spreadOverMasks } from './views';

/** Per pixel, the mean drop of the target over the patches that cover it; a rise counts as no drop (as CAM's ReLU). */
export async function occlusionMap(net: ExplainableModel, image: Pixels, reference: Reference, patchPx: number, stridePx: number, batchSize: number): Promise<{ heatmap: Float32Array; base: number; device: DeviceKind }> {
  const pixels = image.sizePx * image.sizePx;
  const { masks, count } = patchMasks(image.sizePx, patchPx, stridePx);
  // One more, empty mask: the unmasked image's value comes from the same runs.
  const withBase = new Float32Array(masks.length + pixels);
  withBase.set(masks);
  const { values, device } = await scoreMasked(net, image, withBase, count + 1, reference, batchSize);
  const base = values[count];
  return { heatmap: normalizeArray(spreadOverMasks(values.subarray(0, count).map((score) => Math.max(0, base - score)), masks, pixels)), base, device };
}

export const conditionalOcclusion: Explainer = {
  method: 'conditional-occlusion',
  description: 'Conditional occlusion: the drop in the target when a square of one image is blacked out, the other image intact',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options }) {
    const { patchPx, stridePx } = occlusionGeometry(image.sizePx, options.occlusionPatchPx, options.occlusionStridePx);
    if (target.kind === 'prototype') {
      const { heatmap, base, device } = await occlusionMap(net, image, target, patchPx, stridePx, options.batchSize);
      return { heatmap, device, score: base };
    }
    const both = new Float32Array(image.pixels.length * 2);
    both.set(image.pixels);
    both.set(target.pair, image.pixels.length);
    const { features } = await scoreImagesOnDevice(net, both, 2, image.sizePx);
    const width = features.length / 2;
    const [imageFeatures, pairFeatures] = [features.slice(0, width), features.slice(width)];
    const first = await occlusionMap(net, image, { kind: 'features', features: pairFeatures }, patchPx, stridePx, options.batchSize);
    const second = await occlusionMap(net, { ...image, pixels: target.pair }, { kind: 'features', features: imageFeatures }, patchPx, stridePx, options.batchSize);
    return { heatmap: first.heatmap, pairHeatmap: second.heatmap, device: first.device, score: cosine(imageFeatures, pairFeatures) };
  },
};
