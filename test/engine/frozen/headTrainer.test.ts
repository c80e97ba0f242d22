// Frozen-backbone SwAV: the head learns clusters from features; onnxruntime feeds it crops of real images.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { MultiCropOptions } from '../../../src/engine/data/augment';
import type { ImageSet } from '../../../src/engine/data/decode';
import { silentContext } from '../../../src/engine/jobContext';
import { disposeModel, weightsOf } from '../../../src/engine/model/model';
import { bankCropSource, computeFeatureBank, imageSetFeatures, liveCropSource, type FeatureBank } from '../../../src/engine/frozen/cropFeatures';
import { createHeadModel, embedFeatures, trainHeadOnFeatures, type HeadTrainOptions } from '../../../src/engine/frozen/headTrainer';
import { appendHeadToBackbone } from '../../../src/engine/onnx/export';
import { parseOnnx } from '../../../src/engine/onnx/graph';
import { OrtBackbone } from '../../../src/engine/frozen/ortBackbone';
import { OrtModel } from '../../../src/engine/runtime/session';
import { createRandom } from '../../../src/engine/util/random';
import { assertClose, fixtures, referenceHead, toNchw } from '../onnx/helpers';

const headOptions: HeadTrainOptions = {
  epochs: 20,
  minutes: 0,
  batchSize: 30,
  projectionHiddenDim: 32,
  projectionDim: 8,
  prototypes: 6,
  learningRate: 1e-2,
  finalLearningRate: 1e-3,
  warmupEpochs: 1,
  weightDecay: 1e-6,
  temperature: 0.1,
  sinkhornEpsilon: 0.05,
  sinkhornIterations: 3,
  freezePrototypesSteps: 5,
  queueLength: 0,
  queueStartEpoch: 0,
  seed: 3,
};

/**
 * Three clusters that differ in 4 of 16 dimensions; the other 12 carry large noise drawn afresh for every
 * view. A random head clusters by that noise; SwAV must learn to ignore what changes between views.
 */
function syntheticBank(perCluster: number): { bank: FeatureBank; labels: number[]; heldOut: Float32Array } {
  const featureDim = 16;
  const signalDims = 4;
  const random = createRandom(11);
  const centres = Array.from({ length: 3 }, () => Float32Array.from({ length: featureDim }, (_, d) => (d < signalDims ? random.normal() * 1.5 : 0)));
  const labels = Array.from({ length: 3 * perCluster }, (_, i) => i % 3);
  const images = labels.length;
  const views = (count: number) => {
    const data = new Float32Array(count * images * featureDim);
    for (let view = 0; view < count; view++) {
      labels.forEach((label, image) => data.set(Float32Array.from(centres[label], (c, d) => c + random.normal() * (d < signalDims ? 0.3 : 2)), (view * images + image) * featureDim));
    }
    return data;
  };
  return { bank: { images, featureDim, globalViews: 4, localViews: 2, global: views(4), local: views(2) }, labels, heldOut: views(1) };
}

test('head trainer: a time budget that runs out ends the run after the step under way, and says so', async () => {
  const { bank } = syntheticBank(20);
  // 0.6 ms of budget: gone before the first step ends.
  const outcome = await trainHeadOnFeatures(bankCropSource(bank, 2), { ...headOptions, minutes: 1e-5 }, silentContext());
  assert.equal(outcome.steps, 1);
  assert.equal(outcome.stopReason, 'time');
  disposeModel(outcome.model);
  outcome.optimizer.dispose();
});

test('head trainer: on frozen features the loss falls and the prototypes learn the clusters, not the per-view noise', async () => {
  const { bank, labels, heldOut } = syntheticBank(20);
  const outcome = await trainHeadOnFeatures(bankCropSource(bank, 2), headOptions, silentContext());
  assert.equal(outcome.steps, 20 * 2);
  assert.equal(outcome.cancelled, false);
  assert.equal(outcome.stopReason, 'epochs');
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  // Untrained, the loss stays near 4.3; trained it ends near 1.2.
  assert.ok(mean(outcome.losses.slice(-5)) < 0.6 * mean(outcome.losses.slice(0, 5)), `loss ${mean(outcome.losses.slice(0, 5))} → ${mean(outcome.losses.slice(-5))}`);

  // Purity of the prototype assignment on a fresh view: about 0.5 for an untrained head, 0.9 trained.
  const { scores } = await embedFeatures(outcome.model, heldOut, labels.length);
  const counts = new Map<number, number[]>();
  labels.forEach((label, i) => {
    const row = Array.from(scores.subarray(i * headOptions.prototypes, (i + 1) * headOptions.prototypes));
    const prototype = row.indexOf(Math.max(...row));
    if (!counts.has(prototype)) counts.set(prototype, [0, 0, 0]);
    counts.get(prototype)![label]++;
  });
  const purity = [...counts.values()].reduce((sum, perLabel) => sum + Math.max(...perLabel), 0) / labels.length;
  assert.ok(purity >= 0.85, `purity ${purity}`);
  // The trained head's running statistics moved from their start, so the eval check below is not of an identity BatchNorm.
  assert.ok(outcome.model.variables.get('head.bn.runningMean')!.values.some((v) => Math.abs(v) > 1e-3));
  disposeModel(outcome.model);
  outcome.optimizer.dispose();
});

test('head trainer: embedFeatures (onnxruntime head graph, in batches) matches a plain-JS head in eval mode', async () => {
  const spec = { projectionHiddenDim: 12, projectionDim: 5, prototypes: 4 };
  const model = createHeadModel(7, spec, createRandom(2));
  // Running statistics and BatchNorm parameters away from (0, 1), so that eval mode shows.
  const random = createRandom(8);
  for (const suffix of ['gamma', 'beta', 'runningMean', 'runningVariance']) {
    const values = model.variables.get(`head.bn.${suffix}`)!.values;
    for (let i = 0; i < values.length; i++) values[i] = suffix === 'runningVariance' || suffix === 'gamma' ? random.uniform(0.5, 2) : random.uniform(-1, 1);
  }
  const count = 11;
  const features = Float32Array.from({ length: count * 7 }, () => random.normal());
  const expected = referenceHead(spec, model.variables, features, count);
  // One session, and batches of 4 (4 + 4 + 3 rows), agree with each other and with the reference.
  for (const batchSize of [1024, 4]) {
    const { embeddings, scores } = await embedFeatures(model, features, count, batchSize);
    assert.deepEqual([embeddings.length, scores.length], [count * 5, count * 4]);
    assertClose(embeddings, expected.embedding, 1e-5, `embeddings (batches of ${batchSize})`);
    assertClose(scores, expected.scores, 1e-5, `scores (batches of ${batchSize})`);
  }
  // Unit rows, and scores that are cosines.
  for (let n = 0; n < count; n++) {
    const { embeddings } = await embedFeatures(model, features.subarray(n * 7, (n + 1) * 7), 1);
    assert.ok(Math.abs(Math.hypot(...embeddings) - 1) < 1e-5);
  }
  disposeModel(model);
});

test('head trainer: onnxruntime features of live crops and of a precomputed bank both train; cancelling stops after the step', async () => {
  const backbone = await OrtBackbone.open(path.join(fixtures, 'resnet_tiny.onnx'), { threads: 1 });
  const random = createRandom(5);
  const images: ImageSet = {
    root: '/nowhere',
    records: Array.from({ length: 8 }, (_, i) => ({ path: `${i}.png`, label: i % 2 })),
    labelNames: ['a', 'b'],
    imageSizePx: 16,
    channels: 3,
    pixels: Uint8Array.from({ length: 8 * 16 * 16 * 3 }, () => random.int(256)),
    skipped: [],
  };
  const crops: MultiCropOptions = { globalCrops: 2, globalSizePx: 16, globalScale: [0.5, 1], localCrops: 2, localSizePx: 8, localScale: [0.2, 0.5], flipProbability: 0.5, colorJitter: 0.4, grayscaleProbability: 0.2 };
  const options = { ...headOptions, epochs: 1, batchSize: 4, freezePrototypesSteps: 0 };

  const live = await trainHeadOnFeatures(liveCropSource(backbone, images, crops, 12), options, silentContext());
  assert.equal(live.steps, 2);
  assert.ok(live.losses.every(Number.isFinite));

  // The trained head appended to the imported backbone: one ONNX file that gives the same embeddings.
  const weights = weightsOf(live.model);
  const joined = appendHeadToBackbone({ bytes: readFileSync(backbone.file), graph: backbone.graph, featureOutput: 'features' }, { spec: live.model.spec, weights });
  const pixels = Float32Array.from(images.pixels, (v) => v / 255);
  const expected = await embedFeatures(live.model, await backbone.features(pixels, 8, 16, 16, 3), 8);
  const exported = await OrtModel.open(joined, 'joined');
  const actual = await exported.run({ images: { data: toNchw(pixels, 8, 16, 3), dims: [8, 3, 16, 16] } }, ['embedding', 'prototype_scores', 'features']);
  assertClose(actual.embedding.data, expected.embeddings, 1e-4, 'embedding');
  assertClose(actual.prototype_scores.data, expected.scores, 1e-4, 'prototype_scores');
  await exported.dispose();
  // Our own reader sees one graph: the backbone's nodes followed by the head's.
  const reread = parseOnnx(joined, 'joined');
  assert.deepEqual(reread.outputs.map((output) => output.name), ['features', 'embedding', 'prototype_scores']);
  assert.equal(reread.nodes.length, backbone.graph.nodes.length + 7);
  disposeModel(live.model);
  live.optimizer.dispose();

  const bank = await computeFeatureBank(backbone, images, crops, { global: 3, local: 2 }, random, silentContext());
  assert.deepEqual([bank.featureDim, bank.global.length, bank.local.length], [12, 3 * 8 * 12, 2 * 8 * 12]);
  const controller = new AbortController();
  const context = { ...silentContext(controller.signal), progress: (event: { step?: number }) => event.step === 1 && controller.abort() };
  const saves: number[] = [];
  const cancelled = await trainHeadOnFeatures(bankCropSource(bank, 2), { ...options, epochs: 3 }, context, { onEpochEnd: async ({ step }) => void saves.push(step) });
  assert.equal(cancelled.cancelled, true);
  assert.deepEqual(saves, [1], 'a checkpoint hook runs on cancel');
  assert.equal(cancelled.steps, 1);
  disposeModel(cancelled.model);
  cancelled.optimizer.dispose();

  // Index features: the whole image, through the same backbone.
  const { features, featureDim } = await imageSetFeatures(backbone, images, silentContext(), 3);
  assert.equal(featureDim, 12);
  const direct = await backbone.features(Float32Array.from(images.pixels, (v) => v / 255), 8, 16, 16, 3);
  assert.ok(features.every((v, i) => Math.abs(v - direct[i]) < 1e-5));
  await backbone.dispose();
});
