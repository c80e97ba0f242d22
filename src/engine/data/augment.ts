// SwAV multi-crop's random draws: random-resized crop boxes with flips folded in, and colour jitter factors. The
// crops themselves are made on the device (runtime/augmentGraph.ts) or in JS (cropPixels.ts); all randomness comes
// from the seeded `Random`, so a seed repeats the same crops on every device.

import { EngineError } from '../errors';
import type { Random } from '../util/random';

export interface MultiCropOptions {
  globalCrops: number;
  globalSizePx: number;
  /** Share of the image area a global crop covers, [low, high] within (0, 1]. */
  globalScale: [number, number];
  localCrops: number;
  localSizePx: number;
  localScale: [number, number];
  flipProbability: number;
  /** Colour jitter strength 0..1; factors are drawn from [1 - 0.8·s, 1 + 0.8·s] as in SwAV. */
  colorJitter: number;
  grayscaleProbability: number;
}

// SwAV distorts colour in 80% of crops and leaves the rest untouched.
const JITTER_PROBABILITY = 0.8;
const JITTER_RANGE_PER_STRENGTH = 0.8;
const MIN_LOG_ASPECT = Math.log(3 / 4);
const MAX_LOG_ASPECT = Math.log(4 / 3);
// torchvision gives up after 10 tries and falls back to a centre crop; we do the same.
const CROP_ATTEMPTS = 10;

function checkScale(name: string, scale: [number, number]): void {
  const [low, high] = scale;
  if (!(low > 0 && low <= high && high <= 1)) {
    throw new EngineError('BAD_CONFIG', `${name} must be two numbers with 0 < low ≤ high ≤ 1, not [${scale.join(', ')}].`);
  }
}

/**
 * One random-resized-crop box in cropAndResize's normalised coordinates [y1, x1, y2, x2],
 * where 0 and 1 are the centres of the first and last pixel. A flip swaps x1 and x2, which mirrors the crop.
 */
export function sampleCropBox(
  random: Random,
  heightPx: number,
  widthPx: number,
  scale: [number, number],
  flip: boolean,
): [number, number, number, number] {
  const areaPx = heightPx * widthPx;
  let cropHeightPx = 0;
  let cropWidthPx = 0;
  for (let attempt = 0; attempt < CROP_ATTEMPTS && cropWidthPx === 0; attempt++) {
    const targetAreaPx = areaPx * random.uniform(scale[0], scale[1]);
    const aspect = Math.exp(random.uniform(MIN_LOG_ASPECT, MAX_LOG_ASPECT));
    const width = Math.sqrt(targetAreaPx * aspect);
    const height = Math.sqrt(targetAreaPx / aspect);
    if (width <= widthPx && height <= heightPx) {
      cropWidthPx = width;
      cropHeightPx = height;
    }
  }
  let top: number;
  let left: number;
  if (cropWidthPx === 0) {
    // Fallback: the whole image, trimmed to the nearest allowed aspect ratio, centred.
    const imageAspect = widthPx / heightPx;
    cropWidthPx = imageAspect > 4 / 3 ? heightPx * (4 / 3) : widthPx;
    cropHeightPx = imageAspect < 3 / 4 ? widthPx / (3 / 4) : heightPx;
    top = (heightPx - cropHeightPx) / 2;
    left = (widthPx - cropWidthPx) / 2;
  } else {
    top = random.uniform(0, heightPx - cropHeightPx);
    left = random.uniform(0, widthPx - cropWidthPx);
  }
  // Pixel-centre coordinates: a crop of w pixels starting at `left` spans centres left .. left + w - 1.
  const toUnitY = (value: number): number => (heightPx > 1 ? value / (heightPx - 1) : 0);
  const toUnitX = (value: number): number => (widthPx > 1 ? value / (widthPx - 1) : 0);
  const y1 = toUnitY(top);
  const y2 = toUnitY(top + Math.max(cropHeightPx - 1, 0));
  const x1 = toUnitX(left);
  const x2 = toUnitX(left + Math.max(cropWidthPx - 1, 0));
  return flip ? [y1, x2, y2, x1] : [y1, x1, y2, x2];
}

export interface CropDraws {
  boxes: Float32Array;
  brightness: Float32Array;
  contrast: Float32Array;
  saturation: Float32Array;
  grayscale: Float32Array;
  anyGrayscale: boolean;
}

/** Each image's crop box, flip and colour draws, in the order the random stream gives them. */
export function drawCrops(random: Random, shape: number[], scale: [number, number], options: Pick<MultiCropOptions, 'flipProbability' | 'colorJitter' | 'grayscaleProbability'>): CropDraws {
  const [batch, heightPx, widthPx] = shape;
  const draws: CropDraws = {
    boxes: new Float32Array(batch * 4),
    brightness: new Float32Array(batch),
    contrast: new Float32Array(batch),
    saturation: new Float32Array(batch),
    grayscale: new Float32Array(batch),
    anyGrayscale: false,
  };
  const spread = JITTER_RANGE_PER_STRENGTH * options.colorJitter;
  const factor = (): number => random.uniform(Math.max(0, 1 - spread), 1 + spread);
  for (let image = 0; image < batch; image++) {
    const flip = random.next() < options.flipProbability;
    draws.boxes.set(sampleCropBox(random, heightPx, widthPx, scale, flip), image * 4);
    // Every image draws the same count of numbers whatever the branch, so one option never shifts the others' stream.
    const jitter = random.next() < JITTER_PROBABILITY;
    const brightness = factor();
    const contrast = factor();
    const saturation = factor();
    draws.brightness[image] = jitter ? brightness : 1;
    draws.contrast[image] = jitter ? contrast : 1;
    draws.saturation[image] = jitter ? saturation : 1;
    const grey = random.next() < options.grayscaleProbability;
    draws.grayscale[image] = grey ? 1 : 0;
    draws.anyGrayscale ||= grey;
  }
  return draws;
}

/**
 * The draws of `views` crops of each of `batch` images at `sizePx` (boxes and colours, view by view), as
 * what runtime/augmentGraph.ts makes the crops from on the device (data/cropPixels.ts, in JS).
 */
export function drawViews(random: Random, batch: number, sizePx: number, views: number, scale: [number, number], options: MultiCropOptions): { boxes: Float32Array; colours: Float32Array } {
  const boxes = new Float32Array(views * batch * 4);
  const colours = new Float32Array(views * batch * 4);
  for (let view = 0; view < views; view++) {
    const draws = drawCrops(random, [batch, sizePx, sizePx], scale, options);
    boxes.set(draws.boxes, view * batch * 4);
    for (let image = 0; image < batch; image++) colours.set([draws.brightness[image], draws.contrast[image], draws.saturation[image], draws.grayscale[image]], (view * batch + image) * 4);
  }
  return { boxes, colours };
}

/** BAD_CONFIG where a crop scale is not two numbers with 0 < low ≤ high ≤ 1. */
export function checkCropScales(options: Pick<MultiCropOptions, 'globalScale' | 'localScale'>): void {
  checkScale('globalScale', options.globalScale);
  checkScale('localScale', options.localScale);
}
