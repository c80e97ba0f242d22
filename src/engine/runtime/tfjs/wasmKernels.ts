// The kernels we add to, or replace in, the wasm backend so that training a conv net works and runs
// fast: the conv gradients, the gather gradient it lacks, and faster versions of kernels the
// backward pass calls hundreds of times per step. The cpu backend is left alone as the reference.

import * as tf from '@tensorflow/tfjs-core';
// The CommonJS build of tfjs-core registers no gradients; without this, `tf.grads` fails for every op.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { conv2DBackpropFilterConfig, conv2DBackpropInputConfig } from './convGradients';
import { fusedBatchNormKernelConfigs } from './fusedBatchNorm';
import { sliceWithSimd, transposeWithSimd } from './simdKernels';
import { KernelCalls, type KernelArgs } from './kernelCalls';

/** The wasm backend's own kernels we replace, kept for the cases our versions hand back to them. */
const originals = new Map<string, tf.KernelConfig>();

function original(kernelName: string, args: KernelArgs): tf.TensorInfo {
  const config = originals.get(kernelName);
  if (config === undefined) throw new Error(`No wasm kernel '${kernelName}' to fall back to`);
  return config.kernelFunc(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

/** out[segment, …] = Σ x[i, …] over the i whose id is `segment`: the gradient of gather, which wasm lacks. */
function unsortedSegmentSum(args: KernelArgs): tf.TensorInfo {
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = args.attrs.numSegments as number;
  const values = args.backend.readSync(x.dataId) as Float32Array | Int32Array;
  const ids = args.backend.readSync(segmentIds.dataId) as Int32Array;
  const innerShape = x.shape.slice(segmentIds.shape.length);
  const innerSize = tf.util.sizeFromShape(innerShape);
  const output = x.dtype === 'int32' ? new Int32Array(numSegments * innerSize) : new Float32Array(numSegments * innerSize);
  for (let row = 0; row < ids.length; row++) {
    const segment = ids[row];
    // Like TensorFlow, ids outside [0, numSegments) are dropped.
    if (segment < 0 || segment >= numSegments) continue;
    const source = row * innerSize;
    const target = segment * innerSize;
    for (let index = 0; index < innerSize; index++) output[target + index] += values[source + index];
  }
  const shape = [numSegments, ...innerShape];
  return { dataId: args.backend.write(output, shape, x.dtype), shape, dtype: x.dtype };
}

/**
 * Sum or mean over a block of neighbouring axes that stops short of the last one, such as the
 * [0, 1, 2] of batch norm and of every broadcast gradient, done as XNNPACK average pooling. The wasm
 * Sum and Mean kernels first transpose the reduced axes to the end: measured 16 ms against 0.5 ms
 * for 64x32x32x32.
 */
function reduceLeadingAxes(args: KernelArgs, kind: 'sum' | 'mean'): tf.TensorInfo | undefined {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) === 0) return undefined;
  const axes = [...new Set(tf.util.parseAxisParam(args.attrs.axis as number | number[], x.shape))].sort((a, b) => a - b);
  const first = axes[0];
  const last = axes[axes.length - 1];
  if (axes.length === 0 || last - first + 1 !== axes.length || last === x.shape.length - 1) return undefined;
  // XNNPACK pooling with over 4096 channels corrupts wasm memory (measured: a later tf.mean of [24, 27648] over axis 0 fails).
  if (tf.util.sizeFromShape(x.shape.slice(last + 1)) > 4096) return undefined;
  const outer = tf.util.sizeFromShape(x.shape.slice(0, first));
  const lastSize = x.shape[last];
  const rows = tf.util.sizeFromShape(x.shape.slice(first, last));
  const inner = tf.util.sizeFromShape(x.shape.slice(last + 1));
  const shape = args.attrs.keepDims
    ? x.shape.map((size, axis) => (axis >= first && axis <= last ? 1 : size))
    : x.shape.filter((_, axis) => axis < first || axis > last);
  const calls = new KernelCalls(args.backend, 'wasm');
  try {
    let pooled = calls.reshape(x, [outer, rows, lastSize, inner]);
    // Two passes, along the last reduced axis and then the rest, keep float32 rounding near 1e-7.
    const pool = (filterSize: [number, number]) =>
      calls.run('AvgPool', { x: pooled }, { filterSize, strides: [1, 1], pad: 'valid' });
    if (lastSize > 1) pooled = pool([1, lastSize]);
    if (rows > 1) pooled = pool([rows, 1]);
    let result = calls.reshape(pooled, shape);
    if (kind === 'sum') {
      result = calls.run('Multiply', { a: result, b: calls.write(Float32Array.of(rows * lastSize), []) });
    }
    calls.release(result);
    return result;
  } catch (error) {
    calls.release();
    throw error;
  }
}

function sum(args: KernelArgs): tf.TensorInfo {
  return reduceLeadingAxes(args, 'sum') ?? original(tf.Sum, args);
}

function mean(args: KernelArgs): tf.TensorInfo {
  return reduceLeadingAxes(args, 'mean') ?? original(tf.Mean, args);
}

/**
 * Identity (and a cast to the same type) shares the input's data, as the cpu backend does; the wasm
 * kernel copies it, and gradients call it for nearly every op (measured: 190 copies per train step).
 */
function identity(args: KernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype === 'string') return original(tf.Identity, args);
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function cast(args: KernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype !== args.attrs.dtype) return original(tf.Cast, args);
  return identity(args);
}

/**
 * Matrix products with a transposed operand: the wasm kernel runs those (and any batch > 1) as plain scalar
 * loops, and only an untransposed single product through XNNPACK. Every gradient of a dense layer transposes
 * one side, so transpose it first (a fast 2-D copy) and take the XNNPACK path: measured 60 ms → 5 ms per step.
 */
function batchMatMul(args: KernelArgs): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  if ((!transposeA && !transposeB) || batchA !== 1 || batchB !== 1 || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return original(tf.BatchMatMul, args);
  }
  const calls = new KernelCalls(args.backend, 'wasm');
  try {
    const matrix = (x: tf.TensorInfo, transpose: boolean): tf.TensorInfo => {
      const [rows, columns] = x.shape.slice(-2);
      const plain = calls.reshape(x, [rows, columns]);
      return transpose ? calls.run(tf.Transpose, { x: plain }, { perm: [1, 0] }) : plain;
    };
    const product = original(tf.BatchMatMul, {
      ...args,
      inputs: { a: matrix(a, transposeA), b: matrix(b, transposeB) },
      attrs: { ...args.attrs, transposeA: false, transposeB: false },
    });
    const rank = Math.max(a.shape.length, b.shape.length);
    const result = calls.reshape(product, [...new Array<number>(rank - 2).fill(1), ...product.shape.slice(-2)]);
    calls.release(result);
    args.backend.disposeData(product.dataId);
    return result;
  } catch (error) {
    calls.release();
    throw error;
  }
}

/** Transposes, with the patterns the conv gradients use run by our SIMD loops (measured 13 ms → 3 ms for 1.6M floats). */
function transpose(args: KernelArgs): tf.TensorInfo {
  return transposeWithSimd(args, () => original(tf.Transpose, args));
}

/** Slices by our SIMD copy: the wasm kernel first copies its whole input out of the heap. */
function slice(args: KernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.TensorInfo as tf.Tensor, args.attrs.begin as number[], args.attrs.size as number[]);
  return sliceWithSimd(args.backend, x, begin, size) ?? original(tf.Slice, args);
}

const replacements: tf.KernelConfig[] = [
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  { kernelName: tf.UnsortedSegmentSum, backendName: 'wasm', kernelFunc: unsortedSegmentSum as tf.KernelFunc },
  { kernelName: tf.Sum, backendName: 'wasm', kernelFunc: sum as tf.KernelFunc },
  { kernelName: tf.Mean, backendName: 'wasm', kernelFunc: mean as tf.KernelFunc },
  { kernelName: tf.Identity, backendName: 'wasm', kernelFunc: identity as tf.KernelFunc },
  { kernelName: tf.Cast, backendName: 'wasm', kernelFunc: cast as tf.KernelFunc },
  { kernelName: tf.BatchMatMul, backendName: 'wasm', kernelFunc: batchMatMul as tf.KernelFunc },
  { kernelName: tf.Transpose, backendName: 'wasm', kernelFunc: transpose as tf.KernelFunc },
  { kernelName: tf.Slice, backendName: 'wasm', kernelFunc: slice as tf.KernelFunc },
  ...fusedBatchNormKernelConfigs,
];

/** The kernels `registerWasmKernels` adds to or replaces in the wasm backend. */
export const wasmKernelNames: readonly string[] = replacements.map((config) => config.kernelName);

/**
 * Registers our kernels for the wasm backend. Idempotent. Call it after `@tensorflow/tfjs-backend-wasm`
 * is imported, since that import registers the wasm backend's own kernels.
 */
export function registerWasmKernels(): void {
  for (const replacement of replacements) {
    const current = tf.getKernel(replacement.kernelName, 'wasm');
    if (current?.kernelFunc === replacement.kernelFunc) continue;
    if (current !== undefined) {
      originals.set(replacement.kernelName, current);
      // Unregister first: registering over a kernel works but logs a warning.
      tf.unregisterKernel(replacement.kernelName, 'wasm');
    }
    // Keep the original's setup, which the backend runs when it starts, for the cases we hand back.
    tf.registerKernel({ ...replacement, setupFunc: current?.setupFunc, disposeFunc: current?.disposeFunc });
  }
}
