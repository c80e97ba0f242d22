// Backbone features of augmented crops for frozen-backbone SwAV, computed with onnxruntime:
// either per step (fresh crops every time) or once into a bank of views that training samples from.

import { drawViews, type MultiCropOptions } from '../data/augment';
import { batchPixels } from '../data/batch';
import { cropViews, wholeViews } from '../data/cropPixels';
import type { ImageSet } from '../data/decode';
import { throwIfCancelled, yieldToEventLoop, type JobContext } from '../jobContext';
import type { Random } from '../util/random';
import type { CropFeatureSource } from './headTrainer';
import type { OrtBackbone } from './ortBackbone';

/** Precomputed features of augmented views: [views × images × featureDim] for global and for local crops. */
export interface FeatureBank {
  images: number;
  featureDim: number;
  globalViews: number;
  localViews: number;
  global: Float32Array;
  local: Float32Array;
}

/** The size crops are rendered at: the backbone's own size when it fixes one. */
function cropSizes(backbone: OrtBackbone, crops: MultiCropOptions): MultiCropOptions {
  const fixed = backbone.input.heightPx;
  return fixed === undefined ? crops : { ...crops, globalSizePx: fixed, localSizePx: fixed };
}

/** Each crop's NHWC pixels, global views then local ones, with the draws and in the order the training step takes them. */
function renderCrops(images: ImageSet, indices: number[], crops: MultiCropOptions, random: Random): { pixels: Float32Array; sizePx: number }[] {
  const batch = batchPixels(images, indices);
  const { imageSizePx: heightPx, channels } = images;
  const jitter = crops.colorJitter > 0;
  const passes = [
    { views: crops.globalCrops, sizePx: crops.globalSizePx, draws: drawViews(random, indices.length, heightPx, crops.globalCrops, crops.globalScale, crops) },
    { views: crops.localCrops, sizePx: crops.localSizePx, draws: drawViews(random, indices.length, heightPx, crops.localCrops, crops.localScale, crops) },
  ];
  return passes.flatMap(({ views, sizePx, draws }) => {
    const all = cropViews(batch, indices.length, heightPx, channels, draws, sizePx, jitter);
    const perView = indices.length * sizePx * sizePx * channels;
    return Array.from({ length: views }, (_, view) => ({ pixels: all.subarray(view * perView, (view + 1) * perView), sizePx }));
  });
}

/** Backbone features of `crops` (all of one size) in one onnxruntime call, split back per crop. */
async function featuresOf(backbone: OrtBackbone, crops: { pixels: Float32Array; sizePx: number }[], count: number, channels: number): Promise<Float32Array[]> {
  if (crops.length === 0) return [];
  const sizePx = crops[0].sizePx;
  const joined = new Float32Array(crops.reduce((sum, crop) => sum + crop.pixels.length, 0));
  let offset = 0;
  for (const crop of crops) {
    joined.set(crop.pixels, offset);
    offset += crop.pixels.length;
  }
  const features = await backbone.features(joined, count * crops.length, sizePx, sizePx, channels);
  const perCrop = features.length / crops.length;
  return crops.map((_, i) => features.slice(i * perCrop, (i + 1) * perCrop));
}

/** Fresh multi-crop every step, embedded by onnxruntime: global crops in one call, local crops in another. */
export function liveCropSource(backbone: OrtBackbone, images: ImageSet, crops: MultiCropOptions, featureDim: number): CropFeatureSource {
  const sized = cropSizes(backbone, crops);
  return {
    images: images.records.length,
    featureDim,
    crops: crops.globalCrops + crops.localCrops,
    async cropFeatures(indices, random) {
      const rendered = renderCrops(images, indices, sized, random);
      const global = await featuresOf(backbone, rendered.slice(0, sized.globalCrops), indices.length, images.channels);
      const local = await featuresOf(backbone, rendered.slice(sized.globalCrops), indices.length, images.channels);
      return [...global, ...local];
    },
  };
}

/**
 * Embeds `globalViews` global and `localViews` local augmented views of every image once. Training then
 * draws 2 distinct global views and `localCrops` distinct local views per image and step, so onnxruntime
 * runs (globalViews + localViews) times per image in all instead of once per crop and epoch.
 */
export async function computeFeatureBank(
  backbone: OrtBackbone,
  images: ImageSet,
  crops: MultiCropOptions,
  views: { global: number; local: number },
  random: Random,
  context: JobContext,
  batchSize = 128,
): Promise<FeatureBank> {
  const count = images.records.length;
  const sized = cropSizes(backbone, { ...crops, globalCrops: views.global, localCrops: views.local });
  let featureDim = 0;
  let global = new Float32Array(0);
  let local = new Float32Array(0);
  for (let start = 0; start < count; start += batchSize) {
    throwIfCancelled(context.signal);
    const indices = Array.from({ length: Math.min(batchSize, count - start) }, (_, i) => start + i);
    const rendered = renderCrops(images, indices, sized, random);
    const perView = [
      ...(await featuresOf(backbone, rendered.slice(0, views.global), indices.length, images.channels)),
      ...(await featuresOf(backbone, rendered.slice(views.global), indices.length, images.channels)),
    ];
    if (featureDim === 0) {
      featureDim = perView[0].length / indices.length;
      global = new Float32Array(views.global * count * featureDim);
      local = new Float32Array(views.local * count * featureDim);
    }
    perView.forEach((features, view) => {
      const isGlobal = view < views.global;
      const target = isGlobal ? global : local;
      const slot = isGlobal ? view : view - views.global;
      target.set(features, (slot * count + start) * featureDim);
    });
    const done = start + indices.length;
    context.progress({ phase: 'train', fraction: 0.05 * (done / count), message: `Backbone features of augmented views ${done}/${count}` });
    await yieldToEventLoop();
  }
  return { images: count, featureDim, globalViews: views.global, localViews: views.local, global, local };
}

/**
 * Samples crops from a bank: 2 distinct global views (the same one twice when the bank holds one per image) and
 * `localCrops` distinct local views per image.
 */
export function bankCropSource(bank: FeatureBank, localCrops: number): CropFeatureSource {
  if (bank.globalViews < 1) throw new RangeError(`A feature bank needs a global view, has ${bank.globalViews}.`);
  const locals = Math.min(localCrops, bank.localViews);
  const { featureDim, images } = bank;
  return {
    images,
    featureDim,
    crops: 2 + locals,
    async cropFeatures(indices, random) {
      const out = Array.from({ length: 2 + locals }, () => new Float32Array(indices.length * featureDim));
      indices.forEach((image, row) => {
        const globalViews = random.shuffle(Array.from({ length: bank.globalViews }, (_, i) => i));
        const localViews = random.shuffle(Array.from({ length: bank.localViews }, (_, i) => i));
        out.forEach((target, crop) => {
          const [source, view] = crop < 2 ? [bank.global, globalViews[crop % bank.globalViews]] : [bank.local, localViews[crop - 2]];
          const from = (view * images + image) * featureDim;
          target.set(source.subarray(from, from + featureDim), row * featureDim);
        });
      });
      return out;
    },
  };
}

/** Plain features of every image (the whole image at the backbone's size), for the index; in batches. */
export async function imageSetFeatures(backbone: OrtBackbone, images: ImageSet, context: JobContext, batchSize = 256): Promise<{ features: Float32Array; featureDim: number }> {
  const count = images.records.length;
  const sizePx = backbone.input.heightPx ?? images.imageSizePx;
  const chunks: Float32Array[] = [];
  for (let start = 0; start < count; start += batchSize) {
    throwIfCancelled(context.signal);
    const indices = Array.from({ length: Math.min(batchSize, count - start) }, (_, i) => start + i);
    const pixels = wholeViews(batchPixels(images, indices), indices.length, images.imageSizePx, images.channels, sizePx);
    chunks.push(await backbone.features(pixels, indices.length, sizePx, sizePx, images.channels));
    const done = start + indices.length;
    context.progress({ phase: 'index', fraction: done / count, message: `Backbone features ${done}/${count}` });
    await yieldToEventLoop();
  }
  const featureDim = chunks.length ? chunks[0].length / Math.min(batchSize, count) : 0;
  const features = new Float32Array(count * featureDim);
  let offset = 0;
  for (const chunk of chunks) {
    features.set(chunk, offset);
    offset += chunk.length;
  }
  return { features, featureDim };
}
