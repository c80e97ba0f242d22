// The perturbed copies some methods and metrics need: colour-jittered views that keep every pixel in place,
// random erasing masks, square patch masks, and an augmented view of an image as a similarity pair.
import { drawCrops } from '../data/augment';
import { changeColours, cropAndResize } from '../data/cropPixels';
import type { Random } from '../util/random';
import type { Pixels } from './explainer';

/** `count` colour-jittered copies [count, S, S, C] of one image: brightness, contrast, saturation, sometimes grey. */
export function colourViews(image: Pixels, count: number, random: Random, strength = 0.4): Float32Array {
  return colourJitter(image, count, random, strength).views;
}

/** colourViews, with each view's draws [count × 4]: brightness, contrast, saturation, grey (0 or 1). */
export function colourJitter(image: Pixels, count: number, random: Random, strength = 0.4): { views: Float32Array; factors: Float32Array } {
  const factor = () => random.uniform(1 - strength, 1 + strength);
  const brightness = Float32Array.from({ length: count }, factor);
  const contrast = Float32Array.from({ length: count }, factor);
  const saturation = Float32Array.from({ length: count }, factor);
  const grey = Float32Array.from({ length: count }, () => (random.next() < 0.2 ? 1 : 0));
  const factors = new Float32Array(count * 4);
  const perImage = image.pixels.length;
  const views = new Float32Array(count * perImage);
  for (let view = 0; view < count; view++) {
    factors.set([brightness[view], contrast[view], saturation[view], grey[view]], view * 4);
    const copy = views.subarray(view * perImage, (view + 1) * perImage);
    copy.set(image.pixels);
    changeColours(copy, image.channels, { brightness: brightness[view], contrast: contrast[view], saturation: saturation[view], grey: grey[view] });
  }
  return { views, factors };
}

/** Masks [count, S, S, 1] with one random rectangle of 1s each, as torchvision's RandomErasing draws them. */
export function erasingMasks(count: number, sizePx: number, random: Random, scale: [number, number] = [0.02, 0.33], ratio: [number, number] = [0.3, 3.3]): Float32Array {
  const masks = new Float32Array(count * sizePx * sizePx);
  const area = sizePx * sizePx;
  for (let view = 0; view < count; view++) {
    let heightPx = 0;
    let widthPx = 0;
    for (let attempt = 0; attempt < 10 && heightPx === 0; attempt++) {
      const erasedArea = area * random.uniform(scale[0], scale[1]);
      const aspect = Math.exp(random.uniform(Math.log(ratio[0]), Math.log(ratio[1])));
      const h = Math.round(Math.sqrt(erasedArea * aspect));
      const w = Math.round(Math.sqrt(erasedArea / aspect));
      if (h >= 1 && w >= 1 && h < sizePx && w < sizePx) [heightPx, widthPx] = [h, w];
    }
    if (heightPx === 0) [heightPx, widthPx] = [Math.max(1, Math.round(sizePx / 3)), Math.max(1, Math.round(sizePx / 3))];
    const top = random.int(sizePx - heightPx + 1);
    const left = random.int(sizePx - widthPx + 1);
    const offset = view * area;
    for (let y = top; y < top + heightPx; y++) masks.fill(1, offset + y * sizePx + left, offset + y * sizePx + left + widthPx);
  }
  return masks;
}

/** Top-left corners of a sliding square: every `stridePx`, plus one flush with the far edge so that every pixel is covered. */
export function patchPositions(sizePx: number, patchPx: number, stridePx: number): number[] {
  const positions: number[] = [];
  for (let start = 0; start + patchPx <= sizePx; start += stridePx) positions.push(start);
  if (positions[positions.length - 1] !== sizePx - patchPx) positions.push(sizePx - patchPx);
  return positions;
}

/** Patch masks [P, S, S, 1] (1 inside the square) for every position of a sliding square, row by row. */
export function patchMasks(sizePx: number, patchPx: number, stridePx: number): { masks: Float32Array; count: number } {
  const positions = patchPositions(sizePx, patchPx, stridePx);
  const count = positions.length * positions.length;
  const masks = new Float32Array(count * sizePx * sizePx);
  let index = 0;
  for (const top of positions) {
    for (const left of positions) {
      const offset = index * sizePx * sizePx;
      for (let y = top; y < top + patchPx; y++) masks.fill(1, offset + y * sizePx + left, offset + y * sizePx + left + patchPx);
      index++;
    }
  }
  return { masks, count };
}

/** Occluding-square size and stride for an image: the options, or a quarter and a sixteenth of its side. */
export function occlusionGeometry(sizePx: number, patchPx: number, stridePx: number): { patchPx: number; stridePx: number } {
  const patch = Math.min(sizePx, patchPx > 0 ? patchPx : Math.max(1, Math.round(sizePx / 4)));
  const stride = stridePx > 0 ? stridePx : Math.max(1, Math.round(sizePx / 16));
  return { patchPx: patch, stridePx: stride };
}

/** Per pixel, the mean of the values of the masks covering it: Σ_p v_p·m_p / Σ_p m_p (0 where nothing covers it). */
export function spreadOverMasks(values: Float32Array, masks: Float32Array, pixels: number): Float32Array {
  const sums = new Float64Array(pixels);
  const counts = new Float64Array(pixels);
  for (let mask = 0; mask < values.length; mask++) {
    const offset = mask * pixels;
    const value = values[mask];
    for (let pixel = 0; pixel < pixels; pixel++) {
      if (masks[offset + pixel] !== 0) {
        sums[pixel] += value * masks[offset + pixel];
        counts[pixel] += masks[offset + pixel];
      }
    }
  }
  return Float32Array.from(sums, (sum, pixel) => (counts[pixel] > 0 ? sum / counts[pixel] : 0));
}

/** A SwAV-style augmented view of the image itself (random-resized crop, flip, colour jitter), the same size. */
export function augmentedView(image: Pixels, random: Random, cropScale: [number, number] = [0.35, 1]): Float32Array {
  const options = { flipProbability: 0.5, colorJitter: 0.5, grayscaleProbability: 0.2 };
  const draws = drawCrops(random, [1, image.sizePx, image.sizePx], cropScale, options);
  const view = cropAndResize(image.pixels, image.sizePx, image.sizePx, image.channels, draws.boxes, image.sizePx);
  changeColours(view, image.channels, { brightness: draws.brightness[0], contrast: draws.contrast[0], saturation: draws.saturation[0], grey: draws.grayscale[0] });
  // Bilinear weights can overshoot 1 by a rounding error.
  for (let i = 0; i < view.length; i++) view[i] = Math.min(1, Math.max(0, view[i]));
  return view;
}
