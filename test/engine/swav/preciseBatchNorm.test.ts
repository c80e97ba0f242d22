import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { imageBatch } from '../../../src/engine/data/batch';
import type { ImageSet } from '../../../src/engine/data/decode';
import { silentContext } from '../../../src/engine/jobContext';
import { convLayers, networkLayout } from '../../../src/engine/model/layout';
import { createModel, disposeModel, forward, type BatchStatistics, type ModelSpec } from '../../../src/engine/model/model';
import { preciseBatchNormImages, recomputeBatchNormStatistics } from '../../../src/engine/swav/preciseBatchNorm';
import { createRandom } from '../../../src/engine/util/random';

const spec: ModelSpec = { channels: 1, stemStride: 1, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 8, projectionDim: 4, prototypes: 3, inputMean: [0.3], inputStd: [0.2] };
const sizePx = 10;

function randomImages(count: number): ImageSet {
  const random = createRandom(7);
  return {
    root: '',
    records: Array.from({ length: count }, (_, i) => ({ path: `${i}.png`, label: -1 })),
    labelNames: [],
    imageSizePx: sizePx,
    channels: 1,
    pixels: Uint8Array.from({ length: count * sizePx * sizePx }, () => random.int(256)),
    skipped: [],
  };
}

/** Each BatchNorm layer's batch mean and unbiased variance over `indices` in one training-mode pass. */
function oneBatchStatistics(model: ReturnType<typeof createModel>, images: ImageSet, indices: number[]): Map<string, { mean: number[]; variance: number[] }> {
  const statistics: BatchStatistics = new Map();
  tf.tidy(() => {
    forward(model, imageBatch(images, indices), 'train', statistics);
  });
  const out = new Map<string, { mean: number[]; variance: number[] }>();
  for (const [layer, { mean, variance, count }] of statistics) {
    out.set(layer, { mean: Array.from(mean.dataSync()), variance: Array.from(variance.dataSync(), (v) => (v * count) / (count - 1)) });
    tf.dispose([mean, variance]);
  }
  return out;
}

function running(model: ReturnType<typeof createModel>, layer: string): { mean: number[]; variance: number[] } {
  return { mean: Array.from(model.variables.get(`${layer}.runningMean`)!.dataSync()), variance: Array.from(model.variables.get(`${layer}.runningVariance`)!.dataSync()) };
}

function assertClose(actual: number[], expected: number[], what: string): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((value, i) => assert.ok(Math.abs(value - expected[i]) <= 1e-4 * (1 + Math.abs(expected[i])), `${what}[${i}]: ${value} against ${expected[i]}`));
}

test('precise BatchNorm in one batch sets every layer to that batch’s mean and unbiased variance', async () => {
  await tf.setBackend('cpu');
  const model = createModel(spec, createRandom(1));
  const images = randomImages(10);
  const expected = oneBatchStatistics(model, images, Array.from({ length: 10 }, (_, i) => i));
  assert.ok(expected.size >= 4, 'the backbone and the head have BatchNorm layers');
  const used = await recomputeBatchNormStatistics(model, images, silentContext(), { batchSize: 64 });
  assert.equal(used, 10);
  for (const [layer, { mean, variance }] of expected) {
    const got = running(model, layer);
    assertClose(got.mean, mean, `${layer} mean`);
    assertClose(got.variance, variance, `${layer} variance`);
  }
  disposeModel(model);
});

test('precise BatchNorm over several batches: the first layer’s mean is the whole set’s, and tensors stay flat', async () => {
  await tf.setBackend('cpu');
  const model = createModel(spec, createRandom(2));
  const images = randomImages(11);
  const stem = convLayers(networkLayout(spec))[0].batchNorm;
  // The first BatchNorm sees the convolution of the pixels alone, so its batch means average to the full mean.
  const whole = oneBatchStatistics(model, images, Array.from({ length: 11 }, (_, i) => i)).get(stem)!;
  const before = running(model, stem);
  await recomputeBatchNormStatistics(model, images, silentContext(), { batchSize: 4 });
  assertClose(running(model, stem).mean, whole.mean, 'stem mean');
  assert.notDeepEqual(running(model, stem).variance, before.variance);
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) await recomputeBatchNormStatistics(model, images, silentContext(), { batchSize: 4 });
  assert.equal(tf.memory().numTensors, tensors, 'no tensor left behind over repeated calls');
  disposeModel(model);
});

test('precise BatchNorm samples at most maxImages, and a cancel leaves the statistics as they were', async () => {
  await tf.setBackend('cpu');
  const model = createModel(spec, createRandom(3));
  const images = randomImages(12);
  assert.equal(await recomputeBatchNormStatistics(model, images, silentContext(), { maxImages: 5 }), 5);
  const stem = convLayers(networkLayout(spec))[0].batchNorm;
  const kept = running(model, stem);
  const controller = new AbortController();
  controller.abort();
  const other = createModel({ ...spec }, createRandom(4));
  await assert.rejects(recomputeBatchNormStatistics(other, images, silentContext(controller.signal)), (error: Error & { code?: string }) => error.code === 'CANCELLED');
  assert.deepEqual(running(other, stem), { mean: [0, 0, 0, 0], variance: [1, 1, 1, 1] });
  assert.deepEqual(running(model, stem), kept);
  assert.equal(preciseBatchNormImages(28), 4096);
  assert.equal(preciseBatchNormImages(128), 1024);
  [model, other].forEach(disposeModel);
});
