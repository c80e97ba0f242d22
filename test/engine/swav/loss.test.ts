import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { swapLoss } from '../../../src/engine/swav/loss';
import { referenceSinkhorn } from './referenceSinkhorn';

const logSoftmax = (row: number[], temperature: number) => {
  const scaled = row.map((v) => v / temperature);
  const max = Math.max(...scaled);
  const logSum = Math.log(scaled.reduce((sum, v) => sum + Math.exp(v - max), 0)) + max;
  return scaled.map((v) => v - logSum);
};

/** The swapped loss by hand: for each assigned crop, the other crops' cross-entropy against its codes. */
function handLoss(crops: number[][][], temperature: number, epsilon: number): number {
  let total = 0;
  for (const assigned of [0, 1]) {
    const codes = referenceSinkhorn(crops[assigned], epsilon, 3);
    let sub = 0;
    crops.forEach((scores, view) => {
      if (view === assigned) return;
      const perSample = scores.map((row, b) => -logSoftmax(row, temperature).reduce((sum, lp, k) => sum + codes[b][k] * lp, 0));
      sub += perSample.reduce((a, b) => a + b, 0) / perSample.length;
    });
    total += sub / (crops.length - 1);
  }
  return total / 2;
}

test('swapped loss matches a hand computation (2 global + 1 local crop)', async () => {
  await tf.setBackend('cpu');
  const crops = [
    [[0.9, 0.1, -0.2], [0.2, 0.8, 0.1], [-0.3, 0.2, 0.7], [0.5, 0.4, 0.1]],
    [[0.7, 0.3, -0.1], [0.1, 0.9, 0.0], [-0.1, 0.1, 0.8], [0.6, 0.2, 0.3]],
    [[0.3, 0.3, 0.3], [0.0, 0.5, 0.2], [0.2, -0.4, 0.6], [0.8, 0.1, 0.0]],
  ];
  const loss = swapLoss(crops.map((c) => tf.tensor2d(c)), { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3, cropsForAssign: [0, 1] });
  const expected = handLoss(crops, 0.1, 0.05);
  assert.ok(Math.abs(loss.dataSync()[0] - expected) < 1e-4, `loss ${loss.dataSync()[0]} vs hand ${expected}`);
  loss.dispose();
});

test('swapped loss: agreeing views cost less than disagreeing ones', async () => {
  await tf.setBackend('cpu');
  const a = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]];
  const shifted = a.map((row) => [row[2], row[0], row[1]]);
  const options = { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3, cropsForAssign: [0, 1] };
  const agree = swapLoss([tf.tensor2d(a), tf.tensor2d(a)], options).dataSync()[0];
  const disagree = swapLoss([tf.tensor2d(a), tf.tensor2d(shifted)], options).dataSync()[0];
  assert.ok(agree < disagree - 1, `agree ${agree}, disagree ${disagree}`);
});

test('swapped loss: gradients do not flow through the codes', async () => {
  await tf.setBackend('cpu');
  const assigned = tf.tensor2d([[0.5, 0.1], [0.2, 0.6]]);
  const other = tf.tensor2d([[0.3, 0.3], [0.1, 0.9]]);
  // With the other view fixed, the loss still depends on crop 0 only through crop 1's codes (swapped) and crop 0's own prediction.
  const grads = tf.grads((x: tf.Tensor) => swapLoss([x as tf.Tensor2D, other], { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3, cropsForAssign: [0] }))([assigned]);
  // Only view 1 predicts crop 0's codes, so crop 0 gets no gradient at all.
  assert.deepEqual(Array.from(grads[0].dataSync()), [0, 0, 0, 0]);
  tf.dispose([assigned, other, ...grads]);
});
