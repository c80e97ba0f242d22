import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { sinkhorn } from '../../../src/engine/swav/sinkhorn';
import { createRandom } from '../../../src/engine/util/random';
import { referenceSinkhorn } from './referenceSinkhorn';

function randomScores(samples: number, prototypes: number, seed: number): number[][] {
  const random = createRandom(seed);
  return Array.from({ length: samples }, () => Array.from({ length: prototypes }, () => random.uniform(-1, 1)));
}

test('sinkhorn: each sample sums to 1 and prototypes converge to equal shares', async () => {
  await tf.setBackend('cpu');
  const scores = tf.tensor2d(randomScores(64, 8, 1));
  const codes = sinkhorn(scores, 0.05, 50);
  const rows = tf.sum(codes, 1).arraySync() as number[];
  const columns = tf.sum(codes, 0).arraySync() as number[];
  rows.forEach((sum) => assert.ok(Math.abs(sum - 1) < 1e-4, `row sum ${sum}`));
  columns.forEach((sum) => assert.ok(Math.abs(sum - 64 / 8) < 1e-2, `prototype mass ${sum}, want 8`));
  tf.dispose([scores, codes]);
});

test('sinkhorn: three iterations match the float64 reference of the official order', async () => {
  await tf.setBackend('cpu');
  const values = randomScores(16, 5, 2);
  const codes = sinkhorn(tf.tensor2d(values), 0.05, 3);
  const expected = referenceSinkhorn(values, 0.05, 3);
  const actual = codes.arraySync() as number[][];
  actual.forEach((row, b) => row.forEach((v, k) => assert.ok(Math.abs(v - expected[b][k]) < 1e-4, `[${b},${k}] ${v} vs ${expected[b][k]}`)));
  codes.dispose();
});

test('sinkhorn: balances a batch that favours one prototype', async () => {
  await tf.setBackend('cpu');
  // Every sample prefers prototype 0; equipartition must still spread the mass.
  const values = Array.from({ length: 32 }, (_, b) => [0.9, 0.5 + 0.01 * (b % 8), 0.5 - 0.01 * (b % 5), 0.4]);
  const codes = sinkhorn(tf.tensor2d(values), 0.05, 3);
  const mass = tf.sum(codes, 0).arraySync() as number[];
  assert.ok(mass[0] < 32 * 0.5, `prototype 0 holds ${mass[0]} of 32`);
  mass.forEach((m) => assert.ok(m > 32 * 0.1, `every prototype gets a share, got ${mass}`));
  codes.dispose();
});

test('sinkhorn: no tensors leak', async () => {
  await tf.setBackend('cpu');
  const scores = tf.tensor2d(randomScores(8, 4, 3));
  const before = tf.memory().numTensors;
  for (let i = 0; i < 20; i++) sinkhorn(scores).dispose();
  assert.equal(tf.memory().numTensors, before);
  scores.dispose();
});
