// Our own SIMD loops for the wasm backend, written with wasmAssembler.ts and instantiated on the backend's own
// memory, so they read and write its tensors in place: the fused BatchNorm passes (fusedBatchNorm.ts) and the
// transposes the convolution gradients need (tfjs's wasm Transpose is generic and several times slower).
// Sums run in float32 over blocks of 64 pixels and in float64 across blocks, so they stay exact to ~1e-7.

import * as tf from '@tensorflow/tfjs-core';
import { assembleModule, FunctionBuilder, type Instruction } from './wasmAssembler';

type Step = Instruction | [Instruction, number] | [Instruction, number[]];
const blockPixels = 64;

/** One 4-channel vector: `a` and `a·b` summed over pixels into float64 accumulators (acc[c], acc[C + c]). */
function sumsFunction(mode: 'moments' | 'gradient' | 'gradientRelu'): FunctionBuilder {
  // moments: (x, pixels, channels, acc); gradient: (dy, x, y, pixels, channels, acc) with a = g, b = x.
  const gradient = mode !== 'moments';
  const f = new FunctionBuilder(gradient ? 6 : 4);
  const [dyArg, xArg, yArg] = gradient ? [0, 1, 2] : [0, 0, 0];
  const [pixels, channels, acc] = gradient ? [3, 4, 5] : [1, 2, 3];
  const stride = f.local('i32');
  const blockStart = f.local('i32');
  const blockEnd = f.local('i32');
  const channel = f.local('i32');
  const pixel = f.local('i32');
  const offset = f.local('i32');
  const accPointer = f.local('i32');
  const sumA = f.local('v128');
  const sumAB = f.local('v128');
  const a = f.local('v128');
  const zero = f.local('v128');
  f.emitAll(['local.get', channels], ['i32.const', 2], 'i32.shl', ['local.set', stride]);
  f.emitAll('v128.const', ['local.set', zero], ['i32.const', 0], ['local.set', blockStart]);
  f.emitAll('block', 'loop');
  f.emitAll(['local.get', blockStart], ['local.get', pixels], 'i32.ge_u', ['br_if', 1]);
  // blockEnd = min(blockStart + 64, pixels)
  f.emitAll(['local.get', pixels], ['local.get', blockStart], ['i32.const', blockPixels], 'i32.add', ['local.tee', blockEnd]);
  f.emitAll(['local.get', blockEnd], ['local.get', pixels], 'i32.gt_u', 'select', ['local.set', blockEnd]);
  f.emitAll(['i32.const', 0], ['local.set', channel]);
  f.emit('loop');
  f.emitAll(['local.get', zero], ['local.set', sumA], ['local.get', zero], ['local.set', sumAB]);
  f.emitAll(['local.get', blockStart], ['local.get', stride], 'i32.mul', ['local.get', channel], ['i32.const', 2], 'i32.shl', 'i32.add', ['local.set', offset]);
  f.emitAll(['local.get', blockStart], ['local.set', pixel]);
  f.emit('loop');
  const load = (pointer: number): Step[] => [['local.get', pointer], ['local.get', offset], 'i32.add', ['v128.load', 0]];
  if (mode === 'moments') {
    f.emitAll(...load(xArg), ['local.set', a]);
  } else if (mode === 'gradient') {
    f.emitAll(...load(dyArg), ['local.set', a]);
  } else {
    // g = dy where y > 0, else 0
    f.emitAll(...load(dyArg), ...load(yArg), ['local.get', zero], 'f32x4.gt', 'v128.and', ['local.set', a]);
  }
  f.emitAll(['local.get', sumA], ['local.get', a], 'f32x4.add', ['local.set', sumA]);
  const b: Step[] = mode === 'moments' ? [['local.get', a]] : load(xArg);
  f.emitAll(['local.get', sumAB], ['local.get', a], ...b, 'f32x4.mul', 'f32x4.add', ['local.set', sumAB]);
  f.emitAll(['local.get', offset], ['local.get', stride], 'i32.add', ['local.set', offset]);
  f.emitAll(['local.get', pixel], ['i32.const', 1], 'i32.add', ['local.tee', pixel], ['local.get', blockEnd], 'i32.lt_u', ['br_if', 0]);
  f.emit('end');
  // Flush the block's float32 sums into the float64 accumulators.
  f.emitAll(['local.get', acc], ['local.get', channel], ['i32.const', 3], 'i32.shl', 'i32.add', ['local.set', accPointer]);
  for (const [vector, base] of [[sumA, 0], [sumAB, 1]] as const) {
    for (let lane = 0; lane < 4; lane++) {
      const address: Step[] = [['local.get', accPointer]];
      if (base === 1) address.push(['local.get', channels], ['i32.const', 3], 'i32.shl', 'i32.add');
      f.emitAll(...address, ...address, ['f64.load', lane * 8], ['local.get', vector], ['f32x4.extract_lane', lane], 'f64.promote_f32', 'f64.add', ['f64.store', lane * 8]);
    }
  }
  f.emitAll(['local.get', channel], ['i32.const', 4], 'i32.add', ['local.tee', channel], ['local.get', channels], 'i32.lt_u', ['br_if', 0]);
  f.emit('end');
  f.emitAll(['local.get', blockEnd], ['local.set', blockStart], ['br', 0]);
  f.emitAll('end', 'end');
  return f;
}

/**
 * An elementwise pass over [pixels, channels] with per-channel vectors, in 4-lane steps:
 * affine: out = act(x·scale + shift [+ r]), args (x, r, out, pixels, channels, scale, shift);
 * gradient: g = dy [where y > 0]; out = g·k1 + x·k2 + k3 [and gOut = g], args (dy, x, y, out, gOut, pixels, channels, k1, k2, k3).
 */
function elementwiseFunction(kind: 'affine' | 'gradient', relu: boolean, extra: boolean): FunctionBuilder {
  const f = new FunctionBuilder(kind === 'affine' ? 7 : 10);
  const [pixels, channels] = kind === 'affine' ? [3, 4] : [5, 6];
  const total = f.local('i32');
  const stride = f.local('i32');
  const offset = f.local('i32');
  const channelOffset = f.local('i32');
  const value = f.local('v128');
  const zero = f.local('v128');
  const load = (pointer: number, at: number): Step[] => [['local.get', pointer], ['local.get', at], 'i32.add', ['v128.load', 0]];
  const store = (pointer: number, vector: number): Step[] => [['local.get', pointer], ['local.get', offset], 'i32.add', ['local.get', vector], ['v128.store', 0]];
  f.emitAll('v128.const', ['local.set', zero]);
  f.emitAll(['local.get', channels], ['i32.const', 2], 'i32.shl', ['local.tee', stride], ['local.get', pixels], 'i32.mul', ['local.tee', total], 'i32.eqz');
  f.emitAll('if', 'else');
  f.emitAll(['i32.const', 0], ['local.set', offset], ['i32.const', 0], ['local.set', channelOffset]);
  f.emit('loop');
  if (kind === 'affine') {
    f.emitAll(...load(0, offset), ...load(5, channelOffset), 'f32x4.mul', ...load(6, channelOffset), 'f32x4.add');
    if (extra) f.emitAll(...load(1, offset), 'f32x4.add');
    if (relu) f.emitAll(['local.get', zero], 'f32x4.max');
    f.emitAll(['local.set', value], ...store(2, value));
  } else {
    f.emitAll(...load(0, offset));
    if (relu) f.emitAll(...load(2, offset), ['local.get', zero], 'f32x4.gt', 'v128.and');
    f.emitAll(['local.set', value]);
    if (extra) f.emitAll(...store(4, value));
    f.emitAll(['local.get', value], ...load(7, channelOffset), 'f32x4.mul', ...load(1, offset), ...load(8, channelOffset), 'f32x4.mul', 'f32x4.add');
    f.emitAll(...load(9, channelOffset), 'f32x4.add', ['local.set', value], ...store(3, value));
  }
  f.emitAll(['local.get', offset], ['i32.const', 16], 'i32.add', ['local.set', offset]);
  // channelOffset = channelOffset + 16, wrapping to 0 at the end of a pixel
  f.emitAll(['local.get', channelOffset], ['i32.const', 16], 'i32.add', ['local.tee', channelOffset], ['i32.const', 0]);
  f.emitAll(['local.get', channelOffset], ['local.get', stride], 'i32.lt_u', 'select', ['local.set', channelOffset]);
  f.emitAll(['local.get', offset], ['local.get', total], 'i32.lt_u', ['br_if', 0]);
  f.emitAll('end', 'end');
  return f;
}

/** [A, B, C] → [B, A, C]: rows of C floats (C a multiple of 4) move as a whole. Args (src, dst, A, B, C). */
function swapLeadingFunction(): FunctionBuilder {
  const f = new FunctionBuilder(5);
  const [source, destination, countA, countB, countC] = [0, 1, 2, 3, 4];
  const rowBytes = f.local('i32');
  const b = f.local('i32');
  const a = f.local('i32');
  const from = f.local('i32');
  const to = f.local('i32');
  const byte = f.local('i32');
  f.emitAll(['local.get', countC], ['i32.const', 2], 'i32.shl', ['local.set', rowBytes]);
  f.emitAll(['local.get', rowBytes], ['local.get', countA], 'i32.mul', ['local.get', countB], 'i32.mul', 'i32.eqz', 'if', 'else');
  f.emitAll(['local.get', destination], ['local.set', to], ['i32.const', 0], ['local.set', b], 'loop');
  f.emitAll(['i32.const', 0], ['local.set', a], 'loop');
  // from = src + (a·B + b)·rowBytes
  f.emitAll(['local.get', source], ['local.get', a], ['local.get', countB], 'i32.mul', ['local.get', b], 'i32.add', ['local.get', rowBytes], 'i32.mul', 'i32.add', ['local.set', from]);
  f.emitAll(['i32.const', 0], ['local.set', byte], 'loop');
  f.emitAll(['local.get', to], ['local.get', byte], 'i32.add', ['local.get', from], ['local.get', byte], 'i32.add', ['v128.load', 0], ['v128.store', 0]);
  f.emitAll(['local.get', byte], ['i32.const', 16], 'i32.add', ['local.tee', byte], ['local.get', rowBytes], 'i32.lt_u', ['br_if', 0], 'end');
  f.emitAll(['local.get', to], ['local.get', rowBytes], 'i32.add', ['local.set', to]);
  f.emitAll(['local.get', a], ['i32.const', 1], 'i32.add', ['local.tee', a], ['local.get', countA], 'i32.lt_u', ['br_if', 0], 'end');
  f.emitAll(['local.get', b], ['i32.const', 1], 'i32.add', ['local.tee', b], ['local.get', countB], 'i32.lt_u', ['br_if', 0], 'end');
  f.emitAll('end');
  return f;
}

/**
 * [A, B, C] → [C, B, A] for A and C multiples of 4: for every b, the [A, C] matrix is transposed in 4×4 tiles,
 * each as eight lane shuffles. Args (src, dst, A, B, C).
 */
function reverseFunction(): FunctionBuilder {
  const f = new FunctionBuilder(5);
  const [source, destination, countA, countB, countC] = [0, 1, 2, 3, 4];
  const sourceRow = f.local('i32'); // bytes between a and a + 1 in the source: B·C·4
  const destinationRow = f.local('i32'); // bytes between c and c + 1 in the destination: B·A·4
  const b = f.local('i32');
  const a = f.local('i32');
  const c = f.local('i32');
  const from = f.local('i32');
  const to = f.local('i32');
  const rows = [f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128')];
  const low01 = f.local('v128');
  const high01 = f.local('v128');
  const low23 = f.local('v128');
  const high23 = f.local('v128');
  f.emitAll(['local.get', countB], ['local.get', countC], 'i32.mul', ['i32.const', 2], 'i32.shl', ['local.set', sourceRow]);
  f.emitAll(['local.get', countB], ['local.get', countA], 'i32.mul', ['i32.const', 2], 'i32.shl', ['local.set', destinationRow]);
  f.emitAll(['local.get', sourceRow], ['local.get', countA], 'i32.mul', 'i32.eqz', 'if', 'else');
  f.emitAll(['i32.const', 0], ['local.set', b], 'loop');
  f.emitAll(['i32.const', 0], ['local.set', a], 'loop');
  f.emitAll(['i32.const', 0], ['local.set', c], 'loop');
  // from = src + a·sourceRow + (b·C + c)·4; to = dst + c·destinationRow + (b·A + a)·4
  f.emitAll(['local.get', source], ['local.get', a], ['local.get', sourceRow], 'i32.mul', 'i32.add');
  f.emitAll(['local.get', b], ['local.get', countC], 'i32.mul', ['local.get', c], 'i32.add', ['i32.const', 2], 'i32.shl', 'i32.add', ['local.set', from]);
  f.emitAll(['local.get', destination], ['local.get', c], ['local.get', destinationRow], 'i32.mul', 'i32.add');
  f.emitAll(['local.get', b], ['local.get', countA], 'i32.mul', ['local.get', a], 'i32.add', ['i32.const', 2], 'i32.shl', 'i32.add', ['local.set', to]);
  rows.forEach((row, index) => {
    f.emitAll(['local.get', from], ['v128.load', 0], ['local.set', row]);
    if (index < 3) f.emitAll(['local.get', from], ['local.get', sourceRow], 'i32.add', ['local.set', from]);
  });
  const shuffle = (first: number, second: number, lanes: number[], into: number): void => {
    f.emitAll(['local.get', first], ['local.get', second], ['i8x16.shuffle', lanes], ['local.set', into]);
  };
  shuffle(rows[0], rows[1], [0, 4, 1, 5], low01);
  shuffle(rows[0], rows[1], [2, 6, 3, 7], high01);
  shuffle(rows[2], rows[3], [0, 4, 1, 5], low23);
  shuffle(rows[2], rows[3], [2, 6, 3, 7], high23);
  const columns: [number, number, number[]][] = [
    [low01, low23, [0, 1, 4, 5]],
    [low01, low23, [2, 3, 6, 7]],
    [high01, high23, [0, 1, 4, 5]],
    [high01, high23, [2, 3, 6, 7]],
  ];
  columns.forEach(([first, second, lanes], index) => {
    f.emitAll(['local.get', to], ['local.get', first], ['local.get', second], ['i8x16.shuffle', lanes], ['v128.store', 0]);
    if (index < 3) f.emitAll(['local.get', to], ['local.get', destinationRow], 'i32.add', ['local.set', to]);
  });
  f.emitAll(['local.get', c], ['i32.const', 4], 'i32.add', ['local.tee', c], ['local.get', countC], 'i32.lt_u', ['br_if', 0], 'end');
  f.emitAll(['local.get', a], ['i32.const', 4], 'i32.add', ['local.tee', a], ['local.get', countA], 'i32.lt_u', ['br_if', 0], 'end');
  f.emitAll(['local.get', b], ['i32.const', 1], 'i32.add', ['local.tee', b], ['local.get', countB], 'i32.lt_u', ['br_if', 0], 'end');
  f.emitAll('end');
  return f;
}

/**
 * Copies a strided window of a 4-D tensor: out[n, i, j, 0..C) = in[n·sN + i·sH + j·sW + (0..C)], strides in
 * bytes and `source` already at the window's first element. Args (src, dst, N, H, W, C, sN, sH, sW).
 */
function windowFunction(): FunctionBuilder {
  const f = new FunctionBuilder(9);
  const [source, destination, countN, countH, countW, countC, strideN, strideH, strideW] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const n = f.local('i32');
  const i = f.local('i32');
  const j = f.local('i32');
  const from = f.local('i32');
  const to = f.local('i32');
  const byte = f.local('i32');
  const rowBytes = f.local('i32');
  const vectorBytes = f.local('i32');
  f.emitAll(['local.get', countC], ['i32.const', 2], 'i32.shl', ['local.tee', rowBytes], ['i32.const', -16], 'i32.and', ['local.set', vectorBytes]);
  f.emitAll(['local.get', rowBytes], ['local.get', countN], 'i32.mul', ['local.get', countH], 'i32.mul', ['local.get', countW], 'i32.mul', 'i32.eqz', 'if', 'else');
  f.emitAll(['local.get', destination], ['local.set', to], ['i32.const', 0], ['local.set', n], 'loop');
  f.emitAll(['i32.const', 0], ['local.set', i], 'loop');
  f.emitAll(['i32.const', 0], ['local.set', j], 'loop');
  f.emitAll(['local.get', source], ['local.get', n], ['local.get', strideN], 'i32.mul', 'i32.add', ['local.get', i], ['local.get', strideH], 'i32.mul', 'i32.add');
  f.emitAll(['local.get', j], ['local.get', strideW], 'i32.mul', 'i32.add', ['local.set', from], ['i32.const', 0], ['local.set', byte]);
  // Whole vectors, then the last few floats one at a time.
  f.emitAll('block', ['local.get', byte], ['local.get', vectorBytes], 'i32.ge_u', ['br_if', 0], 'loop');
  f.emitAll(['local.get', to], ['local.get', byte], 'i32.add', ['local.get', from], ['local.get', byte], 'i32.add', ['v128.load', 0], ['v128.store', 0]);
  f.emitAll(['local.get', byte], ['i32.const', 16], 'i32.add', ['local.tee', byte], ['local.get', vectorBytes], 'i32.lt_u', ['br_if', 0], 'end', 'end');
  f.emitAll('block', ['local.get', byte], ['local.get', rowBytes], 'i32.ge_u', ['br_if', 0], 'loop');
  f.emitAll(['local.get', to], ['local.get', byte], 'i32.add', ['local.get', from], ['local.get', byte], 'i32.add', ['f32.load', 0], ['f32.store', 0]);
  f.emitAll(['local.get', byte], ['i32.const', 4], 'i32.add', ['local.tee', byte], ['local.get', rowBytes], 'i32.lt_u', ['br_if', 0], 'end', 'end');
  f.emitAll(['local.get', to], ['local.get', rowBytes], 'i32.add', ['local.set', to]);
  f.emitAll(['local.get', j], ['i32.const', 1], 'i32.add', ['local.tee', j], ['local.get', countW], 'i32.lt_u', ['br_if', 0], 'end');
  f.emitAll(['local.get', i], ['i32.const', 1], 'i32.add', ['local.tee', i], ['local.get', countH], 'i32.lt_u', ['br_if', 0], 'end');
  f.emitAll(['local.get', n], ['i32.const', 1], 'i32.add', ['local.tee', n], ['local.get', countN], 'i32.lt_u', ['br_if', 0], 'end');
  f.emitAll('end');
  return f;
}

export interface SimdKernels {
  memory: WebAssembly.Memory;
  moments(x: number, pixels: number, channels: number, acc: number): void;
  gradientSums(relu: boolean, dy: number, x: number, y: number, pixels: number, channels: number, acc: number): void;
  affine(residual: boolean, relu: boolean, x: number, r: number, out: number, pixels: number, channels: number, scale: number, shift: number): void;
  gradient(relu: boolean, writeG: boolean, dy: number, x: number, y: number, out: number, gOut: number, pixels: number, channels: number, k1: number, k2: number, k3: number): void;
  /** [A, B, C] → [B, A, C], C a multiple of 4. */
  swapLeading(source: number, destination: number, a: number, b: number, c: number): void;
  /** [A, B, C] → [C, B, A], A and C multiples of 4. */
  reverse(source: number, destination: number, a: number, b: number, c: number): void;
  /** A strided 4-D window; strides in bytes. */
  window(source: number, destination: number, n: number, h: number, w: number, c: number, strideN: number, strideH: number, strideW: number): void;
}

function instantiate(memory: WebAssembly.Memory): SimdKernels {
  const functions = [
    { name: 'swapLeading', builder: swapLeadingFunction() },
    { name: 'window', builder: windowFunction() },
    { name: 'reverse', builder: reverseFunction() },
    { name: 'moments', builder: sumsFunction('moments') },
    { name: 'gradientSums', builder: sumsFunction('gradient') },
    { name: 'gradientSumsRelu', builder: sumsFunction('gradientRelu') },
  ];
  for (const relu of [false, true]) {
    for (const extra of [false, true]) {
      functions.push({ name: `affine_${relu}_${extra}`, builder: elementwiseFunction('affine', relu, extra) });
      functions.push({ name: `gradient_${relu}_${extra}`, builder: elementwiseFunction('gradient', relu, extra) });
    }
  }
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const module = new WebAssembly.Module(assembleModule(functions, shared));
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, (...args: number[]) => void>;
  return {
    memory,
    moments: exports.moments,
    gradientSums: (relu, ...args) => (relu ? exports.gradientSumsRelu : exports.gradientSums)(...args),
    affine: (residual, relu, ...args) => exports[`affine_${relu}_${residual}`](...args),
    gradient: (relu, writeG, ...args) => exports[`gradient_${relu}_${writeG}`](...args),
    swapLeading: exports.swapLeading,
    window: exports.window,
    reverse: exports.reverse,
  };
}

// ------------------------------------------------------------------------------------------ wasm kernels

/** What our kernels use of the wasm backend: its allocator, its tensor table and its memory. */
export interface WasmBackendInternals extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } };
  wasm: { wasmMemory?: WebAssembly.Memory; asm?: Record<string, unknown> };
}

const kernelsByMemory = new WeakMap<WebAssembly.Memory, SimdKernels>();

export function simdKernels(backend: WasmBackendInternals): SimdKernels {
  const memory =
    backend.wasm.wasmMemory ??
    (Object.values(backend.wasm.asm ?? {}).find((value) => value instanceof WebAssembly.Memory) as WebAssembly.Memory | undefined);
  if (memory === undefined) throw new Error('The wasm backend exposes no memory for the fused BatchNorm kernels');
  let kernels = kernelsByMemory.get(memory);
  if (kernels === undefined) {
    kernels = instantiate(memory);
    kernelsByMemory.set(memory, kernels);
  }
  return kernels;
}

/** Allocates per-step scratch in the backend's heap, and frees it all at the end. */
export class Scratch {
  private readonly infos: tf.TensorInfo[] = [];

  constructor(private readonly backend: WasmBackendInternals) {}

  /** A zeroed float64 array of `length`, returned as its address. */
  float64(length: number): number {
    const info = this.backend.makeOutput([2 * length], 'float32');
    this.infos.push(info);
    const address = this.address(info);
    if (address % 8 !== 0) throw new Error('Unaligned scratch memory for the fused BatchNorm kernels');
    return address;
  }

  /** A float32 array holding `values`, returned as its address. */
  float32(values: Float32Array | number[], memory: WebAssembly.Memory): number {
    const info = this.backend.makeOutput([values.length], 'float32');
    this.infos.push(info);
    const address = this.address(info);
    new Float32Array(memory.buffer, address, values.length).set(values);
    return address;
  }

  address(info: tf.TensorInfo): number {
    return this.backend.dataIdMap.get(info.dataId).memoryOffset;
  }

  release(): void {
    for (const info of this.infos) this.backend.disposeData(info.dataId);
    this.infos.length = 0;
  }
}


/**
 * The wasm Transpose kernel, with the two patterns the convolution gradients use done by our loops: after
 * merging axes that stay neighbours, [A, B, C] → [B, A, C] (C % 4 = 0) and [A, B, C] → [C, B, A] (A, C % 4 = 0),
 * 2-D included. Anything else goes to `fallback`, the backend's own kernel.
 */
export function transposeWithSimd(
  args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs: tf.NamedAttrMap },
  fallback: () => tf.TensorInfo,
): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const perm = args.attrs.perm as number[];
  if (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) === 0) return fallback();
  // Drop axes of size 1, then merge runs of axes that stay neighbours.
  const kept = perm.filter((axis) => x.shape[axis] !== 1);
  const sortedKept = [...kept].sort((p, q) => p - q);
  const groups: number[][] = [];
  for (const axis of kept) {
    const last = groups[groups.length - 1];
    if (last !== undefined && sortedKept.indexOf(last[last.length - 1]) + 1 === sortedKept.indexOf(axis)) last.push(axis);
    else groups.push([axis]);
  }
  const inputOrder = [...groups].sort((p, q) => p[0] - q[0]);
  const sizes = inputOrder.map((group) => group.reduce((size, axis) => size * x.shape[axis], 1));
  const order = groups.map((group) => inputOrder.indexOf(group)).join();
  let pattern: 'swapLeading' | 'reverse' | undefined;
  let dims: [number, number, number] | undefined;
  let outer = 1;
  if (order === '0,2,1,3') {
    // [O, A, B, C] → [O, B, A, C]: the swap below, once per leading index.
    outer = sizes[0];
    sizes.shift();
    pattern = 'swapLeading';
    dims = [sizes[0], sizes[1], sizes[2]];
  } else if (order === '1,0') {
    pattern = 'reverse';
    dims = [sizes[0], 1, sizes[1]];
  } else if (order === '2,1,0') {
    pattern = 'reverse';
    dims = [sizes[0], sizes[1], sizes[2]];
  } else if (order === '1,0,2') {
    pattern = 'swapLeading';
    dims = [sizes[0], sizes[1], sizes[2]];
  }
  if (pattern === undefined || dims === undefined) return fallback();
  const [countA, countB, countC] = dims;
  if (countC % 4 !== 0 || (pattern === 'reverse' && countA % 4 !== 0)) return fallback();
  const backend = args.backend as WasmBackendInternals;
  const kernels = simdKernels(backend);
  const outShape = perm.map((axis) => x.shape[axis]);
  const out = backend.makeOutput(outShape, 'float32');
  const address = (info: tf.TensorInfo) => backend.dataIdMap.get(info.dataId).memoryOffset;
  const blockBytes = 4 * countA * countB * countC;
  for (let index = 0; index < outer; index++) {
    kernels[pattern](address(x) + index * blockBytes, address(out) + index * blockBytes, countA, countB, countC);
  }
  return out;
}

/**
 * out = x[begin + i·strides] for i < size, on tensors of rank ≤ 4 (float32 or int32), with the last axis
 * unstrided: the wasm Slice kernel copies its whole input out of the heap first, and StridedSlice walks
 * element by element (measured 96 ms for a stride-2 sample of 128×28×28×16). Returns undefined where it
 * cannot help.
 */
export function sliceWithSimd(backend: tf.KernelBackend, x: tf.TensorInfo, begin: number[], size: number[], strides?: number[]): tf.TensorInfo | undefined {
  const rank = x.shape.length;
  if ((x.dtype !== 'float32' && x.dtype !== 'int32') || rank < 1 || rank > 4 || (strides !== undefined && strides[rank - 1] !== 1)) return undefined;
  const pad = 4 - rank;
  const shape = [...new Array<number>(pad).fill(1), ...x.shape];
  const start = [...new Array<number>(pad).fill(0), ...begin];
  const count = [...new Array<number>(pad).fill(1), ...size];
  const step = [...new Array<number>(pad).fill(1), ...(strides ?? new Array<number>(rank).fill(1))];
  const inside = (length: number, axis: number) => length === 0 || (length > 0 && start[axis] >= 0 && step[axis] >= 1 && start[axis] + (length - 1) * step[axis] < shape[axis]);
  if (!count.every(inside)) return undefined;
  const wasmBackend = backend as WasmBackendInternals;
  const kernels = simdKernels(wasmBackend);
  const out = wasmBackend.makeOutput(size, x.dtype);
  const elementStrides = [shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1];
  const offset = start.reduce((total, position, axis) => total + position * elementStrides[axis], 0);
  const address = (info: tf.TensorInfo) => wasmBackend.dataIdMap.get(info.dataId).memoryOffset;
  kernels.window(
    address(x) + 4 * offset,
    address(out),
    count[0],
    count[1],
    count[2],
    count[3],
    4 * elementStrides[0] * step[0],
    4 * elementStrides[1] * step[1],
    4 * elementStrides[2] * step[2],
  );
  return out;
}
