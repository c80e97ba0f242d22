import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../../src/engine/runtime/tfjs/backend';
import { assembleModule, FunctionBuilder } from '../../../../src/engine/runtime/tfjs/wasmAssembler';

before(async () => {
  await initBackend('wasm');
});

// Shapes and permutations that hit our SIMD transposes ([A,B,C] → [C,B,A] and → [B,A,C], 2-D, size-1 axes)
// and ones that must fall back (odd sizes, other permutations).
const transposeCases: [number[], number[]][] = [
  [[8, 12], [1, 0]],
  [[16, 28, 28, 8], [3, 1, 2, 0]],
  [[16, 28, 28, 8], [1, 2, 0, 3]],
  [[4, 3, 3, 16], [1, 2, 0, 3]],
  [[1, 8, 1, 12], [3, 2, 1, 0]],
  [[6, 5, 7, 3], [3, 1, 2, 0]],
  [[5, 9], [1, 0]],
  [[4, 8, 12], [0, 2, 1]],
  [[4, 8, 12, 4], [2, 0, 3, 1]],
  [[3, 5, 2, 7, 4], [0, 1, 3, 2, 4]],
  [[2, 3, 5, 8], [0, 2, 1, 3]],
];

for (const [shape, perm] of transposeCases) {
  test(`transpose ${JSON.stringify(shape)} by ${JSON.stringify(perm)} on wasm equals cpu`, async () => {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: size }, (_, i) => i * 0.5 - 7);
    const compute = () => tf.tidy(() => Array.from(tf.transpose(tf.tensor(values, shape), perm).dataSync()));
    const actual = compute();
    await tf.setBackend('cpu');
    const expected = compute();
    await tf.setBackend('wasm');
    assert.deepEqual(actual, expected);
  });
}

const sliceCases: [number[], number[], number[]][] = [
  [[10], [3], [5]],
  [[6, 7], [1, 2], [4, 5]],
  [[6, 7], [0, 0], [6, -1]],
  [[3, 5, 6, 8], [1, 1, 2, 0], [2, 3, 3, 8]],
  [[3, 5, 6, 6], [0, 1, 0, 2], [3, 2, 6, 3]],
  [[2, 3, 4], [0, 0, 1], [2, 3, 0]],
];

for (const [shape, begin, size] of sliceCases) {
  test(`slice ${JSON.stringify(shape)} from ${JSON.stringify(begin)} size ${JSON.stringify(size)} on wasm equals cpu`, async () => {
    const total = shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: total }, (_, i) => i + 0.25);
    const compute = () =>
      tf.tidy(() => {
        const x = tf.tensor(values, shape);
        return [tf.slice(x, begin, size), tf.slice(tf.cast(x, 'int32'), begin, size)].map((t) => ({ shape: t.shape, values: Array.from(t.dataSync()) }));
      });
    const actual = compute();
    await tf.setBackend('cpu');
    const expected = compute();
    await tf.setBackend('wasm');
    assert.deepEqual(actual, expected);
  });
}

test('the assembler writes a module that V8 accepts, with an exported loop that works', () => {
  // out[i] = max(in[i] * 2, 0) for 8 floats, through the same instructions the kernels use.
  const g = new FunctionBuilder(2);
  const i = g.local('i32');
  const zero = g.local('v128');
  g.emitAll('v128.const', ['local.set', zero], ['i32.const', 0], ['local.set', i], 'loop');
  g.emitAll(['local.get', 1], ['local.get', i], 'i32.add');
  g.emitAll(['local.get', 0], ['local.get', i], 'i32.add', ['v128.load', 0], ['local.get', 0], ['local.get', i], 'i32.add', ['v128.load', 0], 'f32x4.add');
  g.emitAll(['local.get', zero], 'f32x4.max', ['v128.store', 0]);
  g.emitAll(['local.get', i], ['i32.const', 16], 'i32.add', ['local.tee', i], ['i32.const', 32], 'i32.lt_u', ['br_if', 0], 'end');
  const memory = new WebAssembly.Memory({ initial: 1 });
  const bytes = assembleModule([{ name: 'double', builder: g }], false);
  assert.ok(WebAssembly.validate(bytes));
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
  const heap = new Float32Array(memory.buffer);
  heap.set([1, -2, 3, -4, 5, -6, 7, 0.5], 0);
  (instance.exports.double as (input: number, output: number) => void)(0, 64);
  assert.deepEqual(Array.from(heap.subarray(16, 24)), [2, 0, 6, 0, 10, 0, 14, 1]);
});
