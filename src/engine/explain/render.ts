// Turns explanations into PNGs with sharp: the image as the model sees it, the heatmap in the jet colour map
// (as pytorch-grad-cam shows it), the two blended, the counterfactual and its diff. Images are enlarged with
// nearest-neighbour sampling, so every model pixel stays visible; heatmaps bilinearly, as they are smooth.
import type { ExplainImages } from '../../protocol/options';
import { loadSharp } from '../nativeModules';

export interface RenderInput {
  /** S·S·C values in [0, 1]. */
  image: Float32Array;
  channels: number;
  imageSizePx: number;
  heatmap: Float32Array;
  pairImage?: Float32Array;
  pairHeatmap?: Float32Array;
  counterfactual?: Float32Array;
  /** Whether `heatmap` is the counterfactual's diff (then it is drawn as diff.png, not heatmap.png). */
  heatmapIsDiff?: boolean;
}

export type RenderedImages = Partial<Record<keyof ExplainImages, Buffer>>;

/** At least 224 px, a whole multiple of the image size, unless asked for a size. */
export function displaySize(imageSizePx: number, requestedPx: number): number {
  return requestedPx > 0 ? requestedPx : imageSizePx * Math.max(1, Math.ceil(224 / imageSizePx));
}

// Jet: blue → cyan → yellow → red, as OpenCV's COLORMAP_JET.
export function jet(value: number): [number, number, number] {
  const v = Math.min(1, Math.max(0, value));
  const channel = (offset: number) => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - offset))));
  return [channel(3), channel(2), channel(1)];
}

/** Bilinear resize of an S × S map to D × D with half-pixel centres. */
export function resizeMap(map: Float32Array, sizePx: number, targetPx: number): Float32Array {
  if (sizePx === targetPx) return Float32Array.from(map);
  const out = new Float32Array(targetPx * targetPx);
  const scale = sizePx / targetPx;
  const at = (y: number, x: number) => map[Math.min(sizePx - 1, Math.max(0, y)) * sizePx + Math.min(sizePx - 1, Math.max(0, x))];
  for (let y = 0; y < targetPx; y++) {
    const sourceY = (y + 0.5) * scale - 0.5;
    const y0 = Math.floor(sourceY);
    const fy = sourceY - y0;
    for (let x = 0; x < targetPx; x++) {
      const sourceX = (x + 0.5) * scale - 0.5;
      const x0 = Math.floor(sourceX);
      const fx = sourceX - x0;
      out[y * targetPx + x] = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
    }
  }
  return out;
}

/** An S × S × C image in [0, 1] as D × D RGB bytes, nearest-neighbour. */
function enlargeImage(image: Float32Array, channels: number, sizePx: number, targetPx: number): Uint8Array {
  const rgb = new Uint8Array(targetPx * targetPx * 3);
  for (let y = 0; y < targetPx; y++) {
    const sourceY = Math.min(sizePx - 1, Math.floor((y * sizePx) / targetPx));
    for (let x = 0; x < targetPx; x++) {
      const source = (sourceY * sizePx + Math.min(sizePx - 1, Math.floor((x * sizePx) / targetPx))) * channels;
      for (let c = 0; c < 3; c++) rgb[(y * targetPx + x) * 3 + c] = Math.round(255 * Math.min(1, Math.max(0, image[source + (channels === 3 ? c : 0)])));
    }
  }
  return rgb;
}

function colourise(map: Float32Array): Uint8Array {
  const rgb = new Uint8Array(map.length * 3);
  map.forEach((value, index) => rgb.set(jet(value), index * 3));
  return rgb;
}

/** (1 − α)·image + α·colour, as pytorch-grad-cam's show_cam_on_image. */
function blend(image: Uint8Array, colour: Uint8Array, opacity: number): Uint8Array {
  return image.map((value, index) => Math.round((1 - opacity) * value + opacity * colour[index]));
}

function png(rgb: Uint8Array, sizePx: number): Promise<Buffer> {
  return loadSharp()(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.length), { raw: { width: sizePx, height: sizePx, channels: 3 } })
    .png()
    .toBuffer();
}

/** Every PNG the explanation has, at display size. */
export async function renderExplanation(input: RenderInput, options: { displaySizePx: number; overlayOpacity: number }): Promise<RenderedImages> {
  const sizePx = input.imageSizePx;
  const targetPx = displaySize(sizePx, options.displaySizePx);
  const original = enlargeImage(input.image, input.channels, sizePx, targetPx);
  const heat = colourise(resizeMap(input.heatmap, sizePx, targetPx));
  const rendered: RenderedImages = { original: await png(original, targetPx) };
  rendered[input.heatmapIsDiff ? 'diff' : 'heatmap'] = await png(heat, targetPx);
  rendered.overlay = await png(blend(original, heat, options.overlayOpacity), targetPx);
  if (input.counterfactual) rendered.counterfactual = await png(enlargeImage(input.counterfactual, input.channels, sizePx, targetPx), targetPx);
  if (input.pairImage && input.pairHeatmap) {
    const pairOriginal = enlargeImage(input.pairImage, input.channels, sizePx, targetPx);
    const pairHeat = colourise(resizeMap(input.pairHeatmap, sizePx, targetPx));
    rendered.pairOriginal = await png(pairOriginal, targetPx);
    rendered.pairHeatmap = await png(pairHeat, targetPx);
    rendered.pairOverlay = await png(blend(pairOriginal, pairHeat, options.overlayOpacity), targetPx);
  }
  return rendered;
}

export const pngFileNames: Record<keyof ExplainImages, string> = {
  original: 'original.png',
  heatmap: 'heatmap.png',
  overlay: 'overlay.png',
  pairOriginal: 'pair-original.png',
  pairHeatmap: 'pair-heatmap.png',
  pairOverlay: 'pair-overlay.png',
  counterfactual: 'counterfactual.png',
  diff: 'diff.png',
};

/** One image (S·S·C in [0, 1]) as a PNG at display size: the donors a counterfactual borrowed from. */
export function renderImage(image: Float32Array, channels: number, sizePx: number, options: { displaySizePx: number }): Promise<Buffer> {
  const targetPx = displaySize(sizePx, options.displaySizePx);
  return png(enlargeImage(image, channels, sizePx, targetPx), targetPx);
}
