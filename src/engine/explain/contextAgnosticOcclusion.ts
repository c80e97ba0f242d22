// Context-agnostic occlusion (the seed): a patch's own contribution, free of its context, is the features
// of the patch alone minus those of the image without it; scored by the cosine with the other image.
import { normalizeArray, type ExplainableModel, type Explainer, type Pixels } from './explainer';
import { scoreImagesOnDevice } from './onDevice';
import { cosine, cosineRows } from './target';
import { occlusionGeometry, patchMasks, spreadOverMasks } from './views';

/** cos(f(x ⊙ m) − f(x ⊙ (1 − m)), f(other)) for every patch m, spread over the pixels it covers. */
async function contextAgnosticMap(net: ExplainableModel, image: Pixels, otherFeatures: Float32Array, patchPx: number, stridePx: number, batchSize: number): Promise<Float32Array> {
  const { sizePx, channels } = image;
  const pixels = sizePx * sizePx;
  const perImage = image.pixels.length;
  const { masks, count } = patchMasks(sizePx, patchPx, stridePx);
  const scores = new Float32Array(count);
  const chunkSize = Math.max(1, Math.floor(batchSize / 2));
  const width = otherFeatures.length;
  for (let start = 0; start < count; start += chunkSize) {
    const size = Math.min(chunkSize, count - start);
    // The patches alone, then the images without them: one batch for both.
    const both = new Float32Array(2 * size * perImage);
    for (let n = 0; n < size; n++) {
      const mask = (start + n) * pixels;
      for (let p = 0; p < pixels; p++) {
        for (let c = 0; c < channels; c++) {
          const value = image.pixels[p * channels + c];
          both[n * perImage + p * channels + c] = value * masks[mask + p];
          both[(size + n) * perImage + p * channels + c] = value * (1 - masks[mask + p]);
        }
      }
    }
    const { features } = await scoreImagesOnDevice(net, both, 2 * size, sizePx, 2 * chunkSize);
    const contributions = Float32Array.from({ length: size * width }, (_, i) => features[i] - features[size * width + i]);
    scores.set(cosineRows(contributions, otherFeatures, size), start);
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
    const { patchPx, stridePx } = occlusionGeometry(image.sizePx, options.occlusionPatchPx, options.occlusionStridePx);
    const both = new Float32Array(image.pixels.length * 2);
    both.set(image.pixels);
    both.set(target.pair, image.pixels.length);
    const { features, device } = await scoreImagesOnDevice(net, both, 2, image.sizePx);
    const width = features.length / 2;
    const [imageFeatures, pairFeatures] = [features.slice(0, width), features.slice(width)];
    return {
      heatmap: await contextAgnosticMap(net, image, pairFeatures, patchPx, stridePx, options.batchSize),
      pairHeatmap: await contextAgnosticMap(net, { ...image, pixels: target.pair }, imageFeatures, patchPx, stridePx, options.batchSize),
      score: cosine(imageFeatures, pairFeatures),
      device,
    };
  },
};
