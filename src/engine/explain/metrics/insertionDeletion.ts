// Insertion and deletion (Petsiuk et al. 2018, in the seed's two-image form): move pixels from a start image
// to a finish image in heatmap order, most important first, and take the area under the similarity curve.
// Deletion goes from the image to black, insertion from a blurred copy to the image. Simultaneous: both images
// change at once; conditional: one changes while the other stays intact (both directions, averaged).
import type { Pixels } from '../explainer';

/**
 * cos(f(images_i), f(pairs_i)) per row of images stacked NHWC (each the size of the image being explained);
 * `pairs` may be one image, compared with every row.
 */
export type PairScorer = (images: Float32Array, pairs: Float32Array) => Promise<Float32Array>;

/** Masks [(steps + 1) · S · S]: row i has 1s on the first round(i · S² / steps) pixels in heatmap order. */
export function revealMasks(heatmap: Float32Array, steps: number): Float32Array {
  const pixels = heatmap.length;
  // Ties keep pixel order, so a flat map deletes row by row rather than at random.
  const order = Array.from(heatmap.keys()).sort((a, b) => heatmap[b] - heatmap[a] || a - b);
  const rank = new Int32Array(pixels);
  order.forEach((pixel, position) => (rank[pixel] = position));
  const masks = new Float32Array((steps + 1) * pixels);
  for (let step = 0; step <= steps; step++) {
    const revealed = Math.round((step * pixels) / steps);
    for (let pixel = 0; pixel < pixels; pixel++) if (rank[pixel] < revealed) masks[step * pixels + pixel] = 1;
  }
  return masks;
}

/** Trapezoid area under a curve sampled at evenly spaced points of [0, 1]. */
export function areaUnderCurve(curve: ArrayLike<number>): number {
  const intervals = curve.length - 1;
  if (intervals < 1) return curve.length === 1 ? curve[0] : 0;
  let sum = 0;
  for (let i = 0; i < curve.length; i++) sum += curve[i];
  return (sum - curve[0] / 2 - curve[intervals] / 2) / intervals;
}

/** A separable Gaussian blur with mirrored edges (the edge pixel not repeated) of images stacked [N, S, S, C]. */
export function gaussianBlur(images: Float32Array, sizePx: number, channels: number, sigmaPx: number): Float32Array {
  const radius = Math.max(1, Math.min(Math.ceil(2 * sigmaPx), sizePx - 1));
  const weights = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigmaPx * sigmaPx)));
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  const kernel = weights.map((weight) => weight / total);
  const mirror = (i: number) => (i < 0 ? -i : i >= sizePx ? 2 * (sizePx - 1) - i : i);
  const plane = sizePx * sizePx * channels;
  const pass = (source: Float32Array, vertical: boolean) => {
    const out = new Float32Array(source.length);
    for (let offset = 0; offset < source.length; offset += plane) {
      for (let y = 0; y < sizePx; y++) {
        for (let x = 0; x < sizePx; x++) {
          for (let c = 0; c < channels; c++) {
            let sum = 0;
            for (let k = -radius; k <= radius; k++) {
              const [row, column] = vertical ? [mirror(y + k), x] : [y, mirror(x + k)];
              sum += kernel[k + radius] * source[offset + (row * sizePx + column) * channels + c];
            }
            out[offset + (y * sizePx + x) * channels + c] = sum;
          }
        }
      }
    }
    return out;
  };
  return pass(pass(images, true), false);
}

/** The blur insertion starts from: σ of a sixteenth of the image side (5 px at 224 px in the seed is about a 45th; small images need more). */
export function insertionBlurSigma(sizePx: number): number {
  return Math.max(1.5, sizePx / 16);
}

export interface ReplacementSide {
  start: Float32Array;
  finish: Float32Array;
  heatmap: Float32Array;
}

/** The steps + 1 stages from start to finish, pixels revealed in heatmap order, stacked. */
function stages(side: ReplacementSide, steps: number): Float32Array {
  const plane = side.heatmap.length;
  const channels = side.start.length / plane;
  const masks = revealMasks(side.heatmap, steps);
  const out = new Float32Array((steps + 1) * side.start.length);
  for (let step = 0; step <= steps; step++) {
    for (let p = 0; p < plane; p++) {
      const revealed = masks[step * plane + p];
      for (let c = 0; c < channels; c++) {
        const i = p * channels + c;
        out[step * side.start.length + i] = side.start[i] * (1 - revealed) + side.finish[i] * revealed;
      }
    }
  }
  return out;
}

/** Similarity at each of steps + 1 stages; `other` moves at the same pace (simultaneous) or stays as it is (conditional). */
export function replacementCurve(score: PairScorer, side: ReplacementSide, other: ReplacementSide | Float32Array, steps: number): Promise<Float32Array> {
  return score(stages(side, steps), other instanceof Float32Array ? other : stages(other, steps));
}

export interface InsertionDeletionScores {
  simultaneousInsertion: number;
  simultaneousDeletion: number;
  conditionalInsertion: number;
  conditionalDeletion: number;
}

/** All four areas for one image pair and its two maps. */
export async function insertionDeletion(score: PairScorer, image: Pixels, pair: Float32Array, heatmap: Float32Array, pairHeatmap: Float32Array, steps: number): Promise<InsertionDeletionScores> {
  const { sizePx, channels } = image;
  const black = new Float32Array(image.pixels.length);
  const sigma = insertionBlurSigma(sizePx);
  const deleteImage = { start: image.pixels, finish: black, heatmap };
  const deletePair = { start: pair, finish: black, heatmap: pairHeatmap };
  const insertImage = { start: gaussianBlur(image.pixels, sizePx, channels, sigma), finish: image.pixels, heatmap };
  const insertPair = { start: gaussianBlur(pair, sizePx, channels, sigma), finish: pair, heatmap: pairHeatmap };
  const area = async (side: ReplacementSide, other: ReplacementSide | Float32Array) => areaUnderCurve(await replacementCurve(score, side, other, steps));
  return {
    simultaneousInsertion: await area(insertImage, insertPair),
    simultaneousDeletion: await area(deleteImage, deletePair),
    conditionalInsertion: ((await area(insertImage, pair)) + (await area(insertPair, image.pixels))) / 2,
    conditionalDeletion: ((await area(deleteImage, pair)) + (await area(deletePair, image.pixels))) / 2,
  };
}
