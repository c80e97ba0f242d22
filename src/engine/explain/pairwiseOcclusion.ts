// Pairwise occlusion (the seed): erase a random rectangle in both images at once and score the drop in their
// similarity. A pixel's value is the mean drop over the erasures that covered it less the mean drop over those
// that did not, so that the other image's erasures, independent of this pixel, cancel out (the seed instead
// gives each drop to one image by embedding norm).
import { createRandom } from '../util/random';
import { normalizeArray, type Explainer } from './explainer';
import { scoreImagesOnDevice } from './onDevice';
import { cosineRows, targetValue } from './target';
import { erasingMasks, spreadOverMasks } from './views';

/** relu(mean drop where erased − mean drop where not), normalised. */
function dropMap(drops: Float32Array, masks: Float32Array, pixels: number): Float32Array {
  const erased = spreadOverMasks(drops, masks, pixels);
  const kept = spreadOverMasks(drops, masks.map((value) => 1 - value), pixels);
  return normalizeArray(erased.map((value, pixel) => Math.max(0, value - kept[pixel])));
}

/** `count` copies of `pixels` (C channels), each times 1 − its mask. */
function erasedCopies(pixels: Float32Array, channels: number, masks: Float32Array, start: number, count: number, into: Float32Array, offset: number): void {
  const plane = pixels.length / channels;
  for (let n = 0; n < count; n++) {
    const mask = (start + n) * plane;
    const out = offset + n * pixels.length;
    for (let p = 0; p < plane; p++) for (let c = 0; c < channels; c++) into[out + p * channels + c] = pixels[p * channels + c] * (1 - masks[mask + p]);
  }
}

export const pairwiseOcclusion: Explainer = {
  method: 'pairwise-occlusion',
  description: 'Pairwise occlusion: random erasures on both images, each pixel scored by the mean similarity drop when erased',
  targets: ['similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options, seed }) {
    if (target.kind !== 'similarity') throw new Error('pairwise occlusion explains a similarity');
    const random = createRandom(seed);
    const { sizePx, channels } = image;
    const pixels = sizePx * sizePx;
    const count = options.pairwiseErasures;
    const imageMasks = erasingMasks(count, sizePx, random);
    const pairMasks = erasingMasks(count, sizePx, random);
    const base = await targetValue(net, image, target);
    const drops = new Float32Array(count);
    const chunkSize = Math.max(1, Math.floor(options.batchSize / 2));
    let device;
    for (let start = 0; start < count; start += chunkSize) {
      const size = Math.min(chunkSize, count - start);
      // The erased images, then their erased pairs: rows i and size + i are compared.
      const erased = new Float32Array(2 * size * image.pixels.length);
      erasedCopies(image.pixels, channels, imageMasks, start, size, erased, 0);
      erasedCopies(target.pair, channels, pairMasks, start, size, erased, size * image.pixels.length);
      const scored = await scoreImagesOnDevice(net, erased, 2 * size, sizePx, 2 * chunkSize);
      device = scored.device;
      const half = scored.features.length / 2;
      const similarities = cosineRows(scored.features.subarray(0, half), scored.features.subarray(half), size);
      for (let n = 0; n < size; n++) drops[start + n] = base - similarities[n];
    }
    return { heatmap: dropMap(drops, imageMasks, pixels), pairHeatmap: dropMap(drops, pairMasks, pixels), score: base, device };
  },
};
