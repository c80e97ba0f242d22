import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../../src/engine/runtime/tfjs/backend';
import { batchNormActivation, batchNormTrainKernel } from '../../../../src/engine/runtime/tfjs/fusedBatchNorm';
import { createRandom } from '../../../../src/engine/util/random';

before(async () => {
  await initBackend('wasm');
});

function values(seed: number, size: number, offset = 0): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length: size }, () => offset + random.uniform(-2, 2));
}

interface Case {
  shape: number[];
  relu: boolean;
  residual: boolean;
}

/** y, mean, variance and the gradients of Σ w·y in x, γ, β (and the residual), on the active backend. */
function run(c: Case): Record<string, { shape: number[]; values: number[] }> {
  return tf.tidy(() => {
    const size = c.shape.reduce((a, b) => a * b, 1);
    const channels = c.shape[c.shape.length - 1];
    // An offset mean, as activations have, checks the statistics for cancellation.
    const x = tf.tensor(values(1, size, 3), c.shape);
    const gamma = tf.tensor1d(values(2, channels));
    const beta = tf.tensor1d(values(3, channels));
    const residual = tf.tensor(values(4, size), c.shape);
    const weights = tf.tensor(values(5, size), c.shape);
    const statistics: tf.Tensor[] = [];
    const f = (...inputs: tf.Tensor[]) => {
      const result = batchNormActivation(inputs[0], inputs[1] as tf.Tensor1D, inputs[2] as tf.Tensor1D, {
        relu: c.relu,
        epsilon: 1e-5,
        residual: c.residual ? inputs[3] : undefined,
      });
      statistics.push(result.mean, result.variance);
      return tf.sum(tf.mul(result.y, weights));
    };
    const inputs = c.residual ? [x, gamma, beta, residual] : [x, gamma, beta];
    const { value, grads } = tf.valueAndGrads(f)(inputs);
    const forward = batchNormActivation(x, gamma, beta, { relu: c.relu, epsilon: 1e-5, residual: c.residual ? residual : undefined });
    statistics.push(forward.mean, forward.variance);
    const named: Record<string, tf.Tensor> = { value, y: forward.y, mean: statistics[0], variance: statistics[1], dx: grads[0], dGamma: grads[1], dBeta: grads[2] };
    if (c.residual) named.dResidual = grads[3];
    const out = Object.fromEntries(Object.entries(named).map(([name, t]) => [name, { shape: t.shape, values: Array.from(t.dataSync()) }]));
    tf.dispose(statistics);
    return out;
  });
}

const cases: Case[] = [
  { shape: [6, 5, 7, 8], relu: true, residual: false },
  { shape: [6, 5, 7, 8], relu: true, residual: true },
  { shape: [3, 9, 9, 4], relu: false, residual: true },
  { shape: [130, 12], relu: false, residual: false },
  { shape: [33, 256], relu: true, residual: false },
];

for (const c of cases) {
  test(`fused BatchNorm on wasm matches the composite ops on cpu: ${JSON.stringify(c)}`, async () => {
    assert.ok(tf.getKernel(batchNormTrainKernel, 'wasm') !== undefined);
    const tensors = tf.memory().numTensors;
    const actual = run(c);
    assert.equal(tf.memory().numTensors, tensors, 'no tensors leak');
    await tf.setBackend('cpu');
    const expected = run(c);
    await tf.setBackend('wasm');
    for (const [name, reference] of Object.entries(expected)) {
      assert.deepEqual(actual[name].shape, reference.shape, name);
      const scale = Math.max(1e-3, ...reference.values.map(Math.abs));
      const worst = Math.max(...reference.values.map((v, i) => Math.abs(actual[name].values[i] - v)));
      assert.ok(worst <= 2e-5 * scale, `${name}: max difference ${worst} against scale ${scale}`);
    }
  });
}

test('channel counts that are not a multiple of 4 fall back to the composite ops', () => {
  const x = tf.tensor2d(values(1, 30), [10, 3]);
  const gamma = tf.ones([3]) as tf.Tensor1D;
  const beta = tf.zeros([3]) as tf.Tensor1D;
  const result = batchNormActivation(x, gamma, beta, { relu: false, epsilon: 0 });
  const mean = result.mean.dataSync();
  mean.forEach((m) => assert.ok(Math.abs(m) < 3));
  const normalized = tf.moments(result.y, 0);
  normalized.mean.dataSync().forEach((m) => assert.ok(Math.abs(m) < 1e-5));
  normalized.variance.dataSync().forEach((v) => assert.ok(Math.abs(v - 1) < 1e-4));
  tf.dispose([x, gamma, beta, result.y, result.mean, result.variance, normalized.mean, normalized.variance]);
});
