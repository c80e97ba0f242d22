import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Adam } from '../../../src/engine/swav/adam';

/** torch.optim.Adam's update (L2 weight decay added to the gradient), in float64, for the expected values. */
function referenceAdam(w: number[], gradients: number[][], rates: number[], decay: number): number[] {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const m = w.map(() => 0);
  const v = w.map(() => 0);
  const out = [...w];
  gradients.forEach((g, t) => {
    for (let i = 0; i < out.length; i++) {
      const gi = g[i] + decay * out[i];
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const mHat = m[i] / (1 - b1 ** (t + 1));
      const vHat = v[i] / (1 - b2 ** (t + 1));
      out[i] -= (rates[t] * mHat) / (Math.sqrt(vHat) + eps);
    }
  });
  return out;
}

test('Adam matches torch.optim.Adam over steps with changing rates and weight decay, from tensors or typed arrays', async () => {
  await tf.setBackend('cpu');
  const start = [0.5, -1.25, 2, 0.01];
  const gradients = [
    [0.1, -0.2, 0.3, 0],
    [-0.05, 0.4, 0.2, 1e-3],
    [0.3, 0.3, -0.6, -2],
  ];
  const rates = [1e-2, 5e-3, 2e-2];
  const expected = referenceAdam(start, gradients, rates, 0.01);
  const tensorsBefore = tf.memory().numTensors;
  const weights = tf.tidy(() => tf.variable(tf.tensor1d(start)));
  const adam = new Adam();
  gradients.forEach((g, t) => {
    if (t % 2 === 0) {
      const gradient = tf.tensor1d(g);
      adam.apply(new Map([['w', weights]]), { w: gradient }, rates[t], 0.01);
      gradient.dispose();
    } else {
      adam.apply(new Map([['w', weights]]), new Map([['w', Float32Array.from(g)]]), rates[t], 0.01);
    }
  });
  const got = Array.from(weights.dataSync());
  got.forEach((value, i) => assert.ok(Math.abs(value - expected[i]) < 1e-6, `weight ${i}: ${value} against ${expected[i]}`));
  // The update moved every weight, so a no-op optimiser cannot pass.
  got.forEach((value, i) => assert.ok(Math.abs(value - start[i]) > 1e-3));
  weights.dispose();
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor left behind');
});

test('Adam resumed from its exported state takes the same next step as one that never stopped', () => {
  const start = Float32Array.from([1, -2, 3]);
  const g1 = Float32Array.from([0.2, 0.1, -0.3]);
  const g2 = Float32Array.from([-0.4, 0.5, 0.1]);
  const straight = tf.variable(tf.tensor1d(start));
  const adam = new Adam();
  adam.apply(new Map([['w', straight]]), new Map([['w', g1]]), 1e-2, 0);
  const saved = new Map([...adam.exportState()].map(([name, { shape, values }]) => [name, { shape, values: values.slice() }]));
  const resumedWeights = tf.variable(tf.tensor1d(straight.dataSync() as Float32Array));
  adam.apply(new Map([['w', straight]]), new Map([['w', g2]]), 1e-2, 0);
  const resumed = new Adam();
  resumed.importState(1, saved);
  resumed.apply(new Map([['w', resumedWeights]]), new Map([['w', g2]]), 1e-2, 0);
  assert.deepEqual(Array.from(resumedWeights.dataSync()), Array.from(straight.dataSync()));
  assert.deepEqual([...saved.keys()].sort(), ['adam.first.w', 'adam.second.w']);
  tf.dispose([straight, resumedWeights]);
});
