// Shared by the ONNX tests: fixture paths, seeded images, NHWC ↔ NCHW, and a max-difference check.
import assert from 'node:assert/strict';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { createRandom } from '../../../src/engine/util/random';

export const fixtures = path.resolve(__dirname, '..', '..', 'fixtures', 'onnx');

/** Seeded NHWC pixels in [0, 1]. */
export function randomPixels(count: number, sizePx: number, channels: number, seed = 1): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length: count * sizePx * sizePx * channels }, () => random.next());
}

export function toNchw(pixels: Float32Array, count: number, sizePx: number, channels: number): Float32Array {
  const out = new Float32Array(pixels.length);
  const plane = sizePx * sizePx;
  for (let n = 0; n < count; n++) for (let p = 0; p < plane; p++) for (let c = 0; c < channels; c++) out[(n * channels + c) * plane + p] = pixels[(n * plane + p) * channels + c];
  return out;
}

export function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, `lengths differ: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Asserts the two agree to `tolerance` and that the values are not all zero (a test that can fail). */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  const difference = maxDifference(actual, expected);
  assert.ok(difference <= tolerance, `${what}: max difference ${difference} > ${tolerance}`);
  assert.ok(Array.from(expected).some((v) => Math.abs(v) > 1e-3), `${what}: reference values are all ~0`);
}

export function tensorOf(pixels: Float32Array, count: number, sizePx: number, channels: number): tf.Tensor4D {
  return tf.tensor4d(pixels, [count, sizePx, sizePx, channels]);
}
