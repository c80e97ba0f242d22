// The scalars explanations explain, on typed arrays: a prototype's score or the cosine of two images' features,
// for one image or many copies of it, with their gradients where a method needs them. Every copy goes through
// the network in batches (onDevice.ts), never one forward pass per copy.
import type { DeviceKind } from '../../protocol/options';
import type { ExplainableModel, Pixels, Target } from './explainer';
import { scoreImagesOnDevice, targetGradients, type TargetGradients } from './onDevice';

/** cos(a, b) of two vectors, 0 when either is zero (as cosineRows's max(|a||b|, 1e-12)). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return dot / Math.max(Math.sqrt(aa * bb), 1e-12);
}

/** cos(a_i, b_i) for `count` rows of `width`; `b` may hold a single row, compared with every row of `a`. */
export function cosineRows(a: Float32Array, b: Float32Array, count: number): Float32Array {
  const width = a.length / count;
  const single = b.length === width;
  return Float32Array.from({ length: count }, (_, row) => cosine(a.subarray(row * width, (row + 1) * width), single ? b : b.subarray(row * width, (row + 1) * width)));
}

/** What many variants of one image are scored against: a prototype, or fixed reference features (F values). */
export type Reference = { kind: 'prototype'; prototype: number } | { kind: 'features'; features: Float32Array };

/** The target's value for each of `count` images: a prototype's score, or the cosine with the reference features. */
export async function scoreAgainst(net: ExplainableModel, images: Float32Array, count: number, sizePx: number, reference: Reference, batch?: number): Promise<{ values: Float32Array; device: DeviceKind }> {
  const { features, scores, device } = await scoreImagesOnDevice(net, images, count, sizePx, batch === undefined ? undefined : Math.max(1, Math.min(batch, count)));
  if (reference.kind === 'features') return { values: cosineRows(features, reference.features, count), device };
  return { values: Float32Array.from({ length: count }, (_, row) => scores[row * net.prototypes + reference.prototype]), device };
}

/** Backbone features of one image, F values. */
export async function featuresOf(net: ExplainableModel, image: Pixels): Promise<Float32Array> {
  return (await scoreImagesOnDevice(net, image.pixels, 1, image.sizePx)).features;
}

/** The target's value at the unmodified image (and pair). */
export async function targetValue(net: ExplainableModel, image: Pixels, target: Target): Promise<number> {
  if (target.kind === 'prototype') return (await scoreImagesOnDevice(net, image.pixels, 1, image.sizePx)).scores[target.prototype];
  const { features } = await scoreImagesOnDevice(net, joined(image.pixels, target.pair), 2, image.sizePx);
  const width = features.length / 2;
  return cosine(features.subarray(0, width), features.subarray(width));
}

function joined(a: Float32Array, b: Float32Array): Float32Array {
  const both = new Float32Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  return both;
}

/**
 * Gradients of Σ_i y_i for `count` copies of an image, where y_i is a prototype's score of copy i, or, for a
 * similarity, cos(f(copy_i), f(pairCopy_i)) with the gradient reaching both: the pair copies follow the image
 * copies as rows count…2·count−1 of the result, each scored against its partner's features.
 */
export async function copiesGradients(
  net: ExplainableModel,
  copies: Float32Array,
  pairCopies: Float32Array | undefined,
  count: number,
  sizePx: number,
  target: { kind: 'prototype'; prototype: number } | { kind: 'similarity' },
  wrt: 'layer' | 'image',
): Promise<TargetGradients> {
  if (target.kind === 'prototype') return targetGradients(net, copies, count, sizePx, target, wrt);
  if (!pairCopies) throw new Error('A similarity gradient needs the pair images.');
  const both = joined(copies, pairCopies);
  const { features } = await scoreImagesOnDevice(net, both, 2 * count, sizePx);
  const half = features.length / 2;
  // Each row's reference is its partner's features: the image copies' are the pairs', and the other way round.
  const references = joined(features.subarray(half), features.subarray(0, half));
  return targetGradients(net, both, 2 * count, sizePx, { kind: 'similarity', references }, wrt);
}
