// Crops and colour changes of images held as typed arrays (NHWC, values in [0, 1]): the explanation methods'
// perturbed copies, and the reference the batched crops are checked against.

const LUMA_WEIGHTS = [0.299, 0.587, 0.114];

/**
 * One crop of an image [H, W, C], resized to [S, S, C] by bilinear sampling, as tf.image.cropAndResize: the box
 * [y1, x1, y2, x2] is in units where 0 and 1 are the centres of the first and last pixel (x1 > x2 mirrors the
 * crop), and samples outside the image are 0.
 */
export function cropAndResize(pixels: Float32Array, heightPx: number, widthPx: number, channels: number, box: ArrayLike<number>, sizePx: number): Float32Array {
  const [y1, x1, y2, x2] = [box[0], box[1], box[2], box[3]];
  const out = new Float32Array(sizePx * sizePx * channels);
  const at = (start: number, end: number, size: number, index: number) =>
    sizePx > 1 ? start * (size - 1) + (index * (end - start) * (size - 1)) / (sizePx - 1) : 0.5 * (start + end) * (size - 1);
  for (let y = 0; y < sizePx; y++) {
    const inY = at(y1, y2, heightPx, y);
    if (inY < 0 || inY > heightPx - 1) continue;
    const top = Math.floor(inY);
    const bottom = Math.ceil(inY);
    const fy = inY - top;
    for (let x = 0; x < sizePx; x++) {
      const inX = at(x1, x2, widthPx, x);
      if (inX < 0 || inX > widthPx - 1) continue;
      const left = Math.floor(inX);
      const right = Math.ceil(inX);
      const fx = inX - left;
      for (let c = 0; c < channels; c++) {
        const value = (row: number, column: number) => pixels[(row * widthPx + column) * channels + c];
        const upper = value(top, left) + (value(top, right) - value(top, left)) * fx;
        const lower = value(bottom, left) + (value(bottom, right) - value(bottom, left)) * fx;
        out[(y * sizePx + x) * channels + c] = upper + (lower - upper) * fy;
      }
    }
  }
  return out;
}

/** One view's colour changes: factors of 1 (and grey 0) leave it as it is. */
export interface ColourChange {
  brightness: number;
  contrast: number;
  saturation: number;
  /** 1 turns the view grey, 0 leaves it. */
  grey: number;
}

const clip = (value: number) => Math.min(1, Math.max(0, value));

/**
 * In place, on one view of `channels` (1 or 3): brightness, contrast about the mean luma, saturation about each
 * pixel's luma, then grey, each clipped to [0, 1] (torchvision's ColorJitter in a fixed order, as augment.ts).
 */
export function changeColours(view: Float32Array, channels: number, change: ColourChange): Float32Array {
  const pixels = view.length / channels;
  const luma = (p: number) => (channels === 3 ? view[p * 3] * LUMA_WEIGHTS[0] + view[p * 3 + 1] * LUMA_WEIGHTS[1] + view[p * 3 + 2] * LUMA_WEIGHTS[2] : view[p]);
  for (let i = 0; i < view.length; i++) view[i] = clip(view[i] * change.brightness);
  let lumaSum = 0;
  for (let p = 0; p < pixels; p++) lumaSum += luma(p);
  const meanLuma = lumaSum / pixels;
  for (let i = 0; i < view.length; i++) view[i] = clip((view[i] - meanLuma) * change.contrast + meanLuma);
  if (channels !== 3) return view;
  for (let p = 0; p < pixels; p++) {
    const grey = luma(p);
    for (let c = 0; c < 3; c++) view[p * 3 + c] = clip((view[p * 3 + c] - grey) * change.saturation + grey);
  }
  if (change.grey !== 0) {
    for (let p = 0; p < pixels; p++) {
      const grey = luma(p);
      for (let c = 0; c < 3; c++) view[p * 3 + c] += (grey - view[p * 3 + c]) * change.grey;
    }
  }
  return view;
}

/**
 * The crops of `views` views of each of `batch` images (NHWC [batch, H, H, C] in [0, 1]) at `sizePx`, view by
 * view, from their boxes and colour draws [views · batch, 4] each (data/augment.ts's drawViews): what the
 * training graph's crops compute (runtime/augmentGraph.ts), in JS.
 */
export function cropViews(images: Float32Array, batch: number, heightPx: number, channels: number, draws: { boxes: Float32Array; colours: Float32Array }, sizePx: number, jitter: boolean): Float32Array {
  const perImage = heightPx * heightPx * channels;
  const perCrop = sizePx * sizePx * channels;
  const rows = draws.boxes.length / 4;
  const out = new Float32Array(rows * perCrop);
  for (let row = 0; row < rows; row++) {
    const image = images.subarray((row % batch) * perImage, ((row % batch) + 1) * perImage);
    const crop = cropAndResize(image, heightPx, heightPx, channels, draws.boxes.subarray(row * 4, row * 4 + 4), sizePx);
    const [brightness, contrast, saturation, grey] = draws.colours.subarray(row * 4, row * 4 + 4);
    changeColours(crop, channels, jitter ? { brightness, contrast, saturation, grey } : { brightness: 1, contrast: 1, saturation: 1, grey });
    for (let i = 0; i < perCrop; i++) out[row * perCrop + i] = clip(crop[i]);
  }
  return out;
}

/** Each image resized whole to `sizePx` (corner pixels aligned), as the model sees an image outside training. */
export function wholeViews(images: Float32Array, batch: number, heightPx: number, channels: number, sizePx: number): Float32Array {
  if (heightPx === sizePx) return images;
  const perImage = heightPx * heightPx * channels;
  const out = new Float32Array(batch * sizePx * sizePx * channels);
  for (let n = 0; n < batch; n++) out.set(cropAndResize(images.subarray(n * perImage, (n + 1) * perImage), heightPx, heightPx, channels, [0, 0, 1, 1], sizePx), n * sizePx * sizePx * channels);
  return out;
}
