// Conv2D gradients for the wasm backend, built from its fast forward conv2d (XNNPACK).
//
// They are wasm *kernels* for Conv2DBackpropFilter and Conv2DBackpropInput, so tfjs-core's own
// Conv2D gradient works unchanged, and the cpu backend keeps its native kernels, which the tests
// use as the reference. Inside a kernel we call the wasm backend's other kernels directly (as the
// wasm package's own composite kernels do), so no intermediate reaches the engine or the tape.

import * as tf from '@tensorflow/tfjs-core';
import { KernelCalls, type KernelArgs } from './kernelCalls';
import { sliceWithSimd } from './simdKernels';

type Shape4 = [number, number, number, number];

/** The geometry of one spatial axis of a forward convolution. */
interface AxisGeometry {
  /** Input length. */
  size: number;
  /** Output length. */
  outputSize: number;
  kernel: number;
  stride: number;
  /** Zero padding before the first input element. */
  padBefore: number;
}

function explicitPadding(top: number, bottom: number, left: number, right: number): tf.backend_util.ExplicitPadding {
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

/** Reads the forward convolution's geometry exactly as tfjs-core computes it, for any padding mode. */
function forwardGeometry(
  inputShape: Shape4,
  filterShape: Shape4,
  strides: [number, number] | number,
  pad: tf.Conv2DBackpropFilterAttrs['pad'],
  dataFormat: string,
  dimRoundingMode: tf.Conv2DBackpropFilterAttrs['dimRoundingMode'],
): [AxisGeometry, AxisGeometry] {
  if (dataFormat !== 'NHWC') {
    throw new Error(`Conv2D gradients on wasm support only the NHWC data format, not ${dataFormat}`);
  }
  const info = tf.backend_util.computeConv2DInfo(inputShape, filterShape, strides, 1, pad, dimRoundingMode);
  return [
    {
      size: info.inHeight,
      outputSize: info.outHeight,
      kernel: info.filterHeight,
      stride: info.strideHeight,
      padBefore: info.padInfo.top,
    },
    {
      size: info.inWidth,
      outputSize: info.outWidth,
      kernel: info.filterWidth,
      stride: info.strideWidth,
      padBefore: info.padInfo.left,
    },
  ];
}

/** x[begin + i·strides] for i < size, by our SIMD copy (the wasm StridedSlice kernel goes element by element). */
function window(calls: KernelCalls, x: tf.TensorInfo, begin: number[], size: number[], strides: number[]): tf.TensorInfo {
  const copied = sliceWithSimd(calls.backend, x, begin, size, strides);
  if (copied !== undefined) return calls.adopt(copied);
  const end = begin.map((start, axis) => start + (size[axis] - 1) * strides[axis] + 1);
  return calls.run('StridedSlice', { x }, { begin, end, strides, beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0 });
}

/**
 * dW[ky,kx,ci,co] = Σ_{n,oy,ox} x[n, oy·s + ky − pad, ox·s + kx − pad, ci] · dy[n,oy,ox,co]:
 * one conv2d over x as [Ci,H,W,N] with dy as the filter [Ho,Wo,N,Co], dilated by the stride.
 */
function conv2DBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const [rows, columns] = forwardGeometry(x.shape as Shape4, filterShape, strides, pad, dataFormat, dimRoundingMode);
  // The padding after the last tap: negative where the forward pass never reached the last inputs.
  const padAfterRows = (rows.outputSize - 1) * rows.stride + rows.kernel - rows.size - rows.padBefore;
  const padAfterColumns = (columns.outputSize - 1) * columns.stride + columns.kernel - columns.size - columns.padBefore;
  const [batch, , , inChannels] = x.shape;
  const calls = new KernelCalls(args.backend, 'wasm');
  try {
    if (rows.kernel === 1 && columns.kernel === 1 && rows.padBefore === 0 && columns.padBefore === 0) {
      // A 1×1 kernel (a shortcut's projection) is a plain product: dW = x_sᵀ · dy over the strided inputs.
      // As a conv with dy as the filter it ran 6x slower than its forward pass.
      const sampled =
        rows.stride === 1 && columns.stride === 1
          ? x
          : window(calls, x, [0, 0, 0, 0], [batch, rows.outputSize, columns.outputSize, inChannels], [1, rows.stride, columns.stride, 1]);
      const pixels = batch * rows.outputSize * columns.outputSize;
      const product = calls.run(
        'BatchMatMul',
        { a: calls.reshape(sampled, [pixels, inChannels]), b: calls.reshape(dy, [pixels, dy.shape[3]]) },
        { transposeA: true, transposeB: false },
      );
      const result = calls.reshape(product, [1, 1, inChannels, dy.shape[3]]);
      calls.release(result);
      return result;
    }
    if (inChannels === 1) {
      // One input channel (the stem): the patches [taps, pixels] are as small as dy, so build them and take
      // one product, dW = patches · dy. The conv with dy as the filter has only `taps` output rows to split.
      const padded = calls.run('PadV2', { x }, {
        paddings: [[0, 0], [rows.padBefore, Math.max(padAfterRows, 0)], [columns.padBefore, Math.max(padAfterColumns, 0)], [0, 0]],
        constantValue: 0,
      });
      const pixels = batch * rows.outputSize * columns.outputSize;
      const taps: tf.TensorInfo[] = [];
      for (let tapY = 0; tapY < rows.kernel; tapY++) {
        for (let tapX = 0; tapX < columns.kernel; tapX++) {
          const tap = window(calls, padded, [0, tapY, tapX, 0], [batch, rows.outputSize, columns.outputSize, 1], [1, rows.stride, columns.stride, 1]);
          taps.push(calls.reshape(tap, [1, pixels]));
        }
      }
      const patches = calls.run('Concat', taps as unknown as tf.NamedTensorInfoMap, { axis: 0 });
      const product = calls.run('BatchMatMul', { a: patches, b: calls.reshape(dy, [pixels, dy.shape[3]]) }, { transposeA: false, transposeB: false });
      const result = calls.reshape(product, [rows.kernel, columns.kernel, 1, dy.shape[3]]);
      calls.release(result);
      return result;
    }
    let input = calls.transpose(x, [3, 1, 2, 0]);
    // Cropping the unreached inputs is cheaper than computing and discarding extra filter taps.
    input = calls.crop(
      input,
      [0, 0, 0, 0],
      [inChannels, rows.size + Math.min(padAfterRows, 0), columns.size + Math.min(padAfterColumns, 0), batch],
    );
    const filter = calls.transpose(dy, [1, 2, 0, 3]);
    const gradient = calls.run(
      'Conv2D',
      { x: input, filter },
      {
        strides: [1, 1],
        dilations: [rows.stride, columns.stride],
        pad: explicitPadding(rows.padBefore, Math.max(padAfterRows, 0), columns.padBefore, Math.max(padAfterColumns, 0)),
        dataFormat: 'NHWC',
      },
    );
    const result = calls.transpose(gradient, [1, 2, 0, 3]);
    calls.release(result);
    return result;
  } catch (error) {
    calls.release();
    throw error;
  }
}

/**
 * The input gradient splits into stride phases: along an axis, input position s·q + phase receives
 * dy[q + d] · w[phase + pad − s·d] for every offset d that lands on a filter tap. Each phase is a
 * stride-1 conv2d of dy with the taps of that phase, so no multiply ever meets the zeros that a
 * dilated dy would hold.
 */
interface AxisPhase {
  /** Offsets d run over [firstOffset, lastOffset]; consecutive offsets are taps s apart. */
  firstOffset: number;
  lastOffset: number;
  /** Filter index of the first offset's tap. */
  firstTap: number;
}

function axisPhase(axis: AxisGeometry, phase: number): AxisPhase | undefined {
  const shifted = phase + axis.padBefore;
  const firstOffset = Math.floor((shifted - axis.kernel) / axis.stride) + 1;
  const lastOffset = Math.floor(shifted / axis.stride);
  if (firstOffset > lastOffset) return undefined;
  return { firstOffset, lastOffset, firstTap: shifted - axis.stride * firstOffset };
}

/** The phase's filter [taps y, taps x, Co, Ci]: flipped, strided and with channels swapped; built on the host since filters are small. */
function phaseFilter(
  weights: Float32Array,
  filterShape: Shape4,
  rows: AxisGeometry,
  columns: AxisGeometry,
  rowPhase: AxisPhase,
  columnPhase: AxisPhase,
): { values: Float32Array; shape: Shape4 } {
  const [, kernelWidth, inChannels, outChannels] = filterShape;
  const tapsY = rowPhase.lastOffset - rowPhase.firstOffset + 1;
  const tapsX = columnPhase.lastOffset - columnPhase.firstOffset + 1;
  const values = new Float32Array(tapsY * tapsX * outChannels * inChannels);
  let target = 0;
  for (let tapY = 0; tapY < tapsY; tapY++) {
    const kernelY = rowPhase.firstTap - rows.stride * tapY;
    for (let tapX = 0; tapX < tapsX; tapX++) {
      const kernelX = columnPhase.firstTap - columns.stride * tapX;
      const tapBase = (kernelY * kernelWidth + kernelX) * inChannels * outChannels;
      for (let outChannel = 0; outChannel < outChannels; outChannel++) {
        for (let inChannel = 0; inChannel < inChannels; inChannel++) {
          values[target++] = weights[tapBase + inChannel * outChannels + outChannel];
        }
      }
    }
  }
  return { values, shape: [tapsY, tapsX, outChannels, inChannels] };
}

/**
 * dx: one stride-1 conv2d of dy per stride phase (one in all for stride 1), each giving dx at
 * positions (s·q + phase y, s·r + phase x); a reshape and transpose interleave them back in place.
 * (The wasm DepthToSpace kernel would do the same interleave, but measured 30x slower.)
 */
function conv2DBackpropInput(args: KernelArgs): tf.TensorInfo {
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const filterShape = filter.shape as Shape4;
  const [rows, columns] = forwardGeometry(inputShape, filterShape, strides, pad, dataFormat, dimRoundingMode);
  const [batch, , , inChannels] = inputShape;
  // Every phase covers ceil(size / stride) positions; the end crop drops those past the input.
  const phaseHeight = Math.ceil(rows.size / rows.stride);
  const phaseWidth = Math.ceil(columns.size / columns.stride);
  const weights = args.backend.readSync(filter.dataId) as Float32Array;
  const calls = new KernelCalls(args.backend, 'wasm');
  try {
    const phases: tf.TensorInfo[] = [];
    for (let phaseY = 0; phaseY < rows.stride; phaseY++) {
      for (let phaseX = 0; phaseX < columns.stride; phaseX++) {
        const rowPhase = axisPhase(rows, phaseY);
        const columnPhase = axisPhase(columns, phaseX);
        if (rowPhase === undefined || columnPhase === undefined) {
          // No tap reaches this phase (a 1x1 kernel with stride 2, say): its gradient is zero.
          phases.push(calls.run('Fill', {}, { shape: [batch, phaseHeight, phaseWidth, inChannels], value: 0, dtype: 'float32' }));
          continue;
        }
        const built = phaseFilter(weights, filterShape, rows, columns, rowPhase, columnPhase);
        // Offsets below zero are padding before dy; a negative padding crops the conv's first outputs instead.
        const padTop = -rowPhase.firstOffset;
        const padBottom = phaseHeight + rowPhase.lastOffset - rows.outputSize;
        const padLeft = -columnPhase.firstOffset;
        const padRight = phaseWidth + columnPhase.lastOffset - columns.outputSize;
        const phase = calls.run(
          'Conv2D',
          { x: dy, filter: calls.write(built.values, built.shape) },
          {
            strides: [1, 1],
            dilations: [1, 1],
            pad: explicitPadding(Math.max(padTop, 0), Math.max(padBottom, 0), Math.max(padLeft, 0), Math.max(padRight, 0)),
            dataFormat: 'NHWC',
          },
        );
        phases.push(
          calls.crop(phase, [0, Math.max(-padTop, 0), Math.max(-padLeft, 0), 0], [batch, phaseHeight, phaseWidth, inChannels]),
        );
      }
    }
    let spread = phases[0];
    if (phases.length > 1) {
      // Concatenating along the width keeps the copies long; then [N, q, phase y, phase x, r, C] →
      // [N, q, phase y, r, phase x, C] puts dx[s·q + phase y, s·r + phase x] in place.
      const stacked = calls.run('Concat', phases as unknown as tf.NamedTensorInfoMap, { axis: 2 });
      const split = calls.reshape(stacked, [batch, phaseHeight, rows.stride, columns.stride, phaseWidth, inChannels]);
      const interleaved = calls.transpose(split, [0, 1, 2, 4, 3, 5]);
      spread = calls.reshape(interleaved, [batch, phaseHeight * rows.stride, phaseWidth * columns.stride, inChannels]);
    }
    const result = calls.crop(spread, [0, 0, 0, 0], [...inputShape]);
    calls.release(result);
    return result;
  } catch (error) {
    calls.release();
    throw error;
  }
}

export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as tf.KernelFunc,
};

export const conv2DBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput as tf.KernelFunc,
};
