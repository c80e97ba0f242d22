// Gradients of the target with respect to the input pixels, shared by input × gradient, SmoothGrad and
// averaged transforms: one batched backward pass for every (possibly perturbed) copy, then the saliency.
import { normalizeArray, pairOf, type ExplainableModel, type Explanation, type Pixels, type Target } from './explainer';
import { copiesGradients } from './target';

/** max_c |x ⊙ ∇|, normalised to [0, 1], as S·S values: the seed's saliency for gradient methods. */
export function gradientTimesInput(image: Pixels, gradient: Float32Array): Float32Array {
  const { channels } = image;
  const map = new Float32Array(image.pixels.length / channels);
  for (let p = 0; p < map.length; p++) {
    let high = 0;
    for (let c = 0; c < channels; c++) high = Math.max(high, Math.abs(image.pixels[p * channels + c] * gradient[p * channels + c]));
    map[p] = high;
  }
  return normalizeArray(map);
}

/** The mean of rows start…start+count−1 of `rows` (each `size` values). */
export function meanRows(rows: Float32Array, start: number, count: number, size: number): Float32Array {
  const mean = new Float32Array(size);
  for (let row = start; row < start + count; row++) for (let i = 0; i < size; i++) mean[i] += rows[row * size + i];
  for (let i = 0; i < size; i++) mean[i] /= count;
  return mean;
}

/**
 * input × mean gradient over `count` copies of the image (and of its pair, row i against row i), for the image
 * and, for similarity targets, the pair; the target's value is that of the first copies.
 */
export async function averagedGradientMaps(net: ExplainableModel, image: Pixels, target: Target, copies: Float32Array, pairCopies: Float32Array | undefined, count: number): Promise<Explanation> {
  const pair = pairOf(image, target);
  const gradients = await copiesGradients(net, copies, pairCopies, count, image.sizePx, target.kind === 'prototype' ? target : { kind: 'similarity' }, 'image');
  const size = image.pixels.length;
  const heatmap = gradientTimesInput(image, meanRows(gradients.imageGradients!, 0, count, size));
  const pairHeatmap = pair ? gradientTimesInput(pair, meanRows(gradients.imageGradients!, count, count, size)) : undefined;
  return { heatmap, pairHeatmap, score: gradients.values[0], device: gradients.device };
}
