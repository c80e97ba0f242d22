// ROAD's noisy linear imputation and the cluster deletion curves: a hole in a linear ramp is filled with the ramp
// (a linear function is its neighbours' mean), noise is where the hole is and nowhere else, and the stages
// remove exactly the map's most important pixels first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterCurveStages, noisyLinearImputation } from '../../../src/engine/explain/metrics/clusterDeletion';
import { quantile } from '../../../src/engine/jobs/evaluateCounterfactuals';
import { createRandom } from '../../../src/engine/util/random';

const sizePx = 12;

test('noisy linear imputation fills a hole in a ramp with the ramp, and leaves the kept pixels alone', () => {
  // Two channels: a horizontal ramp and a vertical one.
  const image = new Float32Array(sizePx * sizePx * 2);
  for (let y = 0; y < sizePx; y++) for (let x = 0; x < sizePx; x++) image.set([x / (sizePx - 1), y / (sizePx - 1)], (y * sizePx + x) * 2);
  const removed = new Uint8Array(sizePx * sizePx);
  for (let y = 3; y < 9; y++) for (let x = 2; x < 8; x++) removed[y * sizePx + x] = 1;
  const filled = noisyLinearImputation(image, removed, sizePx, 2, createRandom(1), 0, 400);
  for (let pixel = 0; pixel < sizePx * sizePx; pixel++) {
    for (let channel = 0; channel < 2; channel++) {
      const index = pixel * 2 + channel;
      if (removed[pixel]) assert.ok(Math.abs(filled[index] - image[index]) < 1e-3, `pixel ${pixel}: ${filled[index]} for ${image[index]}`);
      else assert.equal(filled[index], image[index]);
    }
  }
  // With noise, only the hole moves, and by about σ.
  const noisy = noisyLinearImputation(image, removed, sizePx, 2, createRandom(1), 0.01, 400);
  let squared = 0;
  for (let pixel = 0; pixel < sizePx * sizePx; pixel++) {
    for (let channel = 0; channel < 2; channel++) {
      const index = pixel * 2 + channel;
      if (!removed[pixel]) assert.equal(noisy[index], image[index]);
      else squared += (noisy[index] - filled[index]) ** 2;
    }
  }
  const sigma = Math.sqrt(squared / (36 * 2));
  assert.ok(sigma > 0.005 && sigma < 0.02, `noise σ ${sigma}`);
});

test('deletion stages remove the most important pixels first; insertion stages keep them first', () => {
  const pixels = sizePx * sizePx;
  const image = Float32Array.from({ length: pixels }, (_, i) => 0.2 + (0.6 * i) / pixels);
  const heatmap = Float32Array.from({ length: pixels }, (_, i) => (i * 37) % pixels);
  const order = Array.from(heatmap.keys()).sort((a, b) => heatmap[b] - heatmap[a]);
  const steps = 4;
  const deletion = clusterCurveStages(image, new Float32Array(pixels).fill(0.5), heatmap, sizePx, 1, steps, 'deletion', 'black', createRandom(0));
  const insertion = clusterCurveStages(image, new Float32Array(pixels).fill(0.5), heatmap, sizePx, 1, steps, 'insertion', 'black', createRandom(0));
  for (let step = 0; step <= steps; step++) {
    const count = Math.round((step * pixels) / steps);
    const top = new Set(order.slice(0, count));
    for (let pixel = 0; pixel < pixels; pixel++) {
      assert.equal(deletion[step * pixels + pixel], top.has(pixel) ? 0 : image[pixel]);
      assert.equal(insertion[step * pixels + pixel], top.has(pixel) ? image[pixel] : 0.5);
    }
  }
});

test('quantiles interpolate between sorted values', () => {
  assert.equal(quantile([3, 1, 2], 0.5), 2);
  assert.equal(quantile([4, 1, 3, 2], 0.5), 2.5);
  assert.ok(Math.abs(quantile([0, 10], 0.9) - 9) < 1e-12);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});
