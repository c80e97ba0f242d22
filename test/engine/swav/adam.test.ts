import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Parameter } from '../../../src/engine/model/model';
import { Adam } from '../../../src/engine/swav/adam';

/** A one-weight-array parameter store. */
const store = (values: number[] | Float32Array, trainable = true): Map<string, Parameter> => new Map([['w', { shape: [values.length], values: Float32Array.from(values), trainable }]]);

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

test('Adam matches torch.optim.Adam over steps with changing rates and weight decay, in place on the store', () => {
  const start = [0.5, -1.25, 2, 0.01];
  const gradients = [
    [0.1, -0.2, 0.3, 0],
    [-0.05, 0.4, 0.2, 1e-3],
    [0.3, 0.3, -0.6, -2],
  ];
  const rates = [1e-2, 5e-3, 2e-2];
  const expected = referenceAdam(start, gradients, rates, 0.01);
  const variables = store(start);
  const weights = variables.get('w')!.values;
  const adam = new Adam();
  gradients.forEach((g, t) => adam.apply(variables, new Map([['w', Float32Array.from(g)]]), rates[t], 0.01));
  assert.equal(variables.get('w')!.values, weights, 'updated in place, the same array');
  assert.equal(adam.step, 3);
  const got = Array.from(weights);
  got.forEach((value, i) => assert.ok(Math.abs(value - expected[i]) < 1e-6, `weight ${i}: ${value} against ${expected[i]}`));
  // The update moved every weight, so a no-op optimiser cannot pass.
  got.forEach((value, i) => assert.ok(Math.abs(value - start[i]) > 1e-3));
});

test('Adam without weight decay, on several arrays: each its own moments; arrays without a gradient stay, unknown gradients are ignored', () => {
  const variables = new Map<string, Parameter>([
    ['a', { shape: [2], values: Float32Array.from([1, -1]), trainable: true }],
    ['b', { shape: [3], values: Float32Array.from([0.2, 0.3, 0.4]), trainable: true }],
    ['frozen', { shape: [1], values: Float32Array.from([7]), trainable: true }],
  ]);
  const ga = [[0.5, -0.5], [0.1, 0.2]];
  const gb = [[1, 0, -1], [-3, 2, 0.5]];
  const adam = new Adam();
  for (let t = 0; t < 2; t++) {
    adam.apply(variables, new Map([['a', Float32Array.from(ga[t])], ['b', Float32Array.from(gb[t])], ['missing', Float32Array.from([1])]]), 1e-2, 0);
  }
  const expectA = referenceAdam([1, -1], ga, [1e-2, 1e-2], 0);
  const expectB = referenceAdam([0.2, 0.3, 0.4], gb, [1e-2, 1e-2], 0);
  Array.from(variables.get('a')!.values).forEach((v, i) => assert.ok(Math.abs(v - expectA[i]) < 1e-6, `a[${i}] ${v} vs ${expectA[i]}`));
  Array.from(variables.get('b')!.values).forEach((v, i) => assert.ok(Math.abs(v - expectB[i]) < 1e-6, `b[${i}] ${v} vs ${expectB[i]}`));
  assert.deepEqual(Array.from(variables.get('frozen')!.values), [7]);
  assert.deepEqual([...adam.exportState().keys()].sort(), ['adam.first.a', 'adam.first.b', 'adam.second.a', 'adam.second.b']);
});

test('Adam resumed from its exported state takes the same next step as one that never stopped', () => {
  const start = [1, -2, 3];
  const g1 = Float32Array.from([0.2, 0.1, -0.3]);
  const g2 = Float32Array.from([-0.4, 0.5, 0.1]);
  const straight = store(start);
  const adam = new Adam();
  adam.apply(straight, new Map([['w', g1]]), 1e-2, 0);
  const saved = new Map([...adam.exportState()].map(([name, { shape, values }]) => [name, { shape, values: values.slice() }]));
  const afterFirst = straight.get('w')!.values.slice();
  const resumedWeights = store(afterFirst);
  adam.apply(straight, new Map([['w', g2]]), 1e-2, 0);
  const resumed = new Adam();
  resumed.importState(1, saved);
  resumed.apply(resumedWeights, new Map([['w', g2]]), 1e-2, 0);
  assert.deepEqual(Array.from(resumedWeights.get('w')!.values), Array.from(straight.get('w')!.values));
  assert.deepEqual([...saved.keys()].sort(), ['adam.first.w', 'adam.second.w']);
  // Without the saved state (step 1 again, no moments) the second step differs: the resume is not trivially equal.
  const restarted = store(afterFirst);
  new Adam().apply(restarted, new Map([['w', g2]]), 1e-2, 0);
  assert.notDeepEqual(Array.from(restarted.get('w')!.values), Array.from(straight.get('w')!.values));
});
