import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { checkpointPath, loadCheckpoint, saveCheckpoint, type CheckpointHeader } from '../../../src/engine/model/checkpoint';
import { batchNormWithBatchStatistics, createModel, disposeModel, featureDim, forward, normalizePrototypes, variable, type ModelSpec } from '../../../src/engine/model/model';
import { resolveTrainOptions } from '../../../src/engine/config';
import { createRandom } from '../../../src/engine/util/random';
import { tempDir } from '../../tempDir';
import { tinySpec } from './tinySpec';

const spec: ModelSpec = tinySpec;

test('forward: shapes, unit-norm embeddings, scores are cosines with unit prototypes', async () => {
  await tf.setBackend('cpu');
  const model = createModel(spec, createRandom(0));
  const images = tf.randomUniform([3, 12, 12, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
  const out = forward(model, images, 'eval');
  assert.deepEqual(out.features.shape, [3, featureDim(spec)]);
  assert.deepEqual(out.embedding.shape, [3, 8]);
  assert.deepEqual(out.scores.shape, [3, 5]);
  const norms = tf.norm(out.embedding, 'euclidean', 1).dataSync();
  norms.forEach((n) => assert.ok(Math.abs(n - 1) < 1e-5));
  const prototypeNorms = tf.norm(variable(model, 'prototypes'), 'euclidean', 1).dataSync();
  prototypeNorms.forEach((n) => assert.ok(Math.abs(n - 1) < 1e-5));
  Array.from(out.scores.dataSync()).forEach((s) => assert.ok(Math.abs(s) <= 1 + 1e-5));
  tf.dispose([images, out.features, out.embedding, out.scores]);
  disposeModel(model);
});

test('forward: train mode normalises with batch statistics, eval mode with running ones', async () => {
  await tf.setBackend('cpu');
  const model = createModel(spec, createRandom(1));
  const images = tf.randomUniform([4, 8, 8, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
  const train = forward(model, images, 'train');
  const evaluation = forward(model, images, 'eval');
  const difference = tf.max(tf.abs(tf.sub(train.features, evaluation.features))).dataSync()[0];
  assert.ok(difference > 1e-3, 'fresh running statistics (0, 1) differ from batch statistics');
  tf.dispose([images, train.features, train.embedding, train.scores, evaluation.features, evaluation.embedding, evaluation.scores]);
  disposeModel(model);
});

test('forward and normalizePrototypes do not leak tensors', async () => {
  await tf.setBackend('cpu');
  const model = createModel(spec, createRandom(2));
  const images = tf.randomUniform([2, 8, 8, 1]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  for (let i = 0; i < 10; i++) {
    normalizePrototypes(model);
    const out = forward(model, images, 'eval');
    tf.dispose([out.features, out.embedding, out.scores]);
  }
  assert.equal(tf.memory().numTensors, before);
  images.dispose();
  disposeModel(model);
});

test('checkpoint: save and load give the same network; corrupt files get a clear error', async () => {
  await tf.setBackend('cpu');
  const dir = tempDir('cl-ckpt-');
  const model = createModel(spec, createRandom(3));
  const header: CheckpointHeader = {
    format: 'cluster-lens-checkpoint',
    spec,
    options: resolveTrainOptions({}),
    epoch: 2,
    step: 40,
    elapsedMs: 1234,
    randomState: 99,
    backend: 'cpu',
    savedAt: new Date().toISOString(),
  };
  const extra = new Map([['adam.first.stem.conv', { shape: [3, 3, 1, 4], values: new Float32Array(36).fill(1) }]]);
  await saveCheckpoint(checkpointPath(dir), header, model, extra);
  const loaded = await loadCheckpoint(checkpointPath(dir));
  assert.equal(loaded.header.step, 40);
  assert.deepEqual(loaded.extra.get('adam.first.stem.conv')?.shape, [3, 3, 1, 4]);
  const images = tf.randomUniform([2, 8, 8, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
  const a = forward(model, images, 'eval');
  const b = forward(loaded.model, images, 'eval');
  assert.deepEqual(Array.from(a.scores.dataSync()), Array.from(b.scores.dataSync()));
  tf.dispose([images, a.features, a.embedding, a.scores, b.features, b.embedding, b.scores]);
  disposeModel(model);
  disposeModel(loaded.model);

  const broken = path.join(dir, 'broken.ckpt');
  writeFileSync(broken, 'not a checkpoint');
  await assert.rejects(loadCheckpoint(broken), (error: { code?: string; message: string }) => error.code === 'BAD_CHECKPOINT' && error.message.includes(broken));
  await assert.rejects(loadCheckpoint(path.join(dir, 'missing.ckpt')), (error: { code?: string }) => error.code === 'NO_CHECKPOINT');
});

test('config: defaults resolve, bad settings are named', () => {
  const options = resolveTrainOptions({ imageSizePx: 28 });
  assert.equal(options.imageSizePx, 28);
  assert.ok(options.localCropSizePx >= 8 && options.localCropSizePx < 28);
  assert.throws(() => resolveTrainOptions({ prototypes: 0 }), /prototypes/);
  assert.throws(() => resolveTrainOptions({ backend: 'gpu' as never }), /backend/);
  assert.throws(() => resolveTrainOptions({ queueLength: 100, batchSize: 64 }), /queueLength/);
});

test('training BatchNorm: closed-form gradient matches autodiff of tf.batchNorm over tf.moments', async () => {
  await tf.setBackend('cpu');
  for (const shape of [[4, 5, 5, 3], [6, 7]]) {
    const channels = shape.at(-1)!;
    const axes = shape.length === 4 ? [0, 1, 2] : [0];
    const x = tf.randomNormal(shape, 1, 2, 'float32', 9);
    const gamma = tf.randomUniform([channels], 0.5, 1.5, 'float32', 10);
    const beta = tf.randomUniform([channels], -0.5, 0.5, 'float32', 11);
    const weights = tf.randomNormal(shape, 0, 1, 'float32', 12);
    const reference = tf.grads((input: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(input, axes);
      return tf.sum(tf.mul(tf.batchNorm(input, mean, variance, b, g, 1e-5), weights)) as tf.Scalar;
    })([x, gamma, beta]);
    const seen: tf.Tensor[] = [];
    const ours = tf.grads((input: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const bn = batchNormWithBatchStatistics(axes, (mean, variance) => seen.push(mean, variance));
      return tf.sum(tf.mul(bn(input, g, b), weights)) as tf.Scalar;
    })([x, gamma, beta]);
    reference.forEach((expected, i) => {
      const difference = tf.max(tf.abs(tf.sub(expected, ours[i]))).dataSync()[0];
      assert.ok(difference < 1e-4, `shape ${shape}: gradient ${i} differs by ${difference}`);
    });
    const { mean } = tf.moments(x, axes);
    assert.ok(tf.max(tf.abs(tf.sub(mean, seen[0]))).dataSync()[0] < 1e-5, 'reports the batch mean');
    tf.dispose([x, gamma, beta, weights, ...reference, ...ours, ...seen, mean]);
  }
});
