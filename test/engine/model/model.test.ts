// The parameter store (model/model.ts): what createModel makes, the prototypes' normalisation, the running
// BatchNorm statistics, the start of a step, and checkpoints. The network's forward pass is checked through its
// graphs (explain and onnx tests) and the training step's graph (swav/stepGraph.test.ts).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { checkpointPath, loadCheckpoint, saveCheckpoint, type CheckpointHeader } from '../../../src/engine/model/checkpoint';
import { convLayers, networkLayout } from '../../../src/engine/model/layout';
import {
  createModel,
  disposeModel,
  featureDim,
  normalizePrototypes,
  normalizeRowsInPlace,
  parameterCount,
  startStep,
  trainableVariables,
  updateRunningStatistics,
  variable,
  weightsOf,
  type BatchStatistics,
  type ModelSpec,
} from '../../../src/engine/model/model';
import { resolveTrainOptions } from '../../../src/engine/config';
import { createRandom } from '../../../src/engine/util/random';
import { tempDir } from '../../tempDir';
import { tinySpec } from './tinySpec';

const spec: ModelSpec = tinySpec;

const meanOf = (values: ArrayLike<number>) => Array.from(values).reduce((a, b) => a + b, 0) / values.length;
const stdOf = (values: ArrayLike<number>) => {
  const mean = meanOf(values);
  return Math.sqrt(Array.from(values).reduce((sum, v) => sum + (v - mean) ** 2, 0) / values.length);
};
const rowNorms = (values: Float32Array, dims: number) => Array.from({ length: values.length / dims }, (_, row) => Math.hypot(...values.subarray(row * dims, (row + 1) * dims)));

test('createModel: every layer of the layout with its shape; BatchNorms start at γ 1, β 0, running (0, 1); unit prototypes', () => {
  for (const architecture of ['resnet', 'plain'] as const) {
    const model = createModel({ ...spec, architecture }, createRandom(0));
    const layers = convLayers(networkLayout({ ...spec, architecture }));
    const expected = new Map<string, number[]>();
    for (const layer of layers) {
      expected.set(layer.conv, [layer.kernel, layer.kernel, layer.inChannels, layer.outChannels]);
      for (const part of ['gamma', 'beta', 'runningMean', 'runningVariance']) expected.set(`${layer.batchNorm}.${part}`, [layer.outChannels]);
    }
    const features = featureDim(spec);
    assert.equal(features, 8, 'two stages of width 4: 8 features');
    expected.set('head.fc1.weight', [features, 16]).set('head.fc1.bias', [16]);
    for (const part of ['gamma', 'beta', 'runningMean', 'runningVariance']) expected.set(`head.bn.${part}`, [16]);
    expected.set('head.fc2.weight', [16, 8]).set('head.fc2.bias', [8]).set('prototypes', [5, 8]);
    assert.deepEqual([...model.variables.keys()].sort(), [...expected.keys()].sort(), architecture);
    for (const [name, { shape, values, trainable }] of model.variables) {
      assert.deepEqual(shape, expected.get(name), name);
      assert.equal(values.length, shape.reduce((a, b) => a * b, 1), `${name}: values fill the shape`);
      assert.equal(trainable, !/\.running(Mean|Variance)$/.test(name), `${name}: only the running statistics are not trained`);
      if (name.endsWith('.gamma') || name.endsWith('.runningVariance')) assert.ok(values.every((v) => v === 1), name);
      if (name.endsWith('.beta') || name.endsWith('.runningMean')) assert.ok(values.every((v) => v === 0), name);
    }
    rowNorms(variable(model, 'prototypes').values, 8).forEach((norm) => assert.ok(Math.abs(norm - 1) < 1e-6, `prototype norm ${norm}`));
    assert.equal(architecture === 'plain', !model.variables.has('stem.conv'));
  }
  assert.throws(() => variable(createModel(spec, createRandom(0)), 'nothing'), /no variable "nothing"/);
});

test('createModel: He-normal convolutions (fan out), PyTorch-uniform linear layers, seeded', () => {
  const wide: ModelSpec = { ...spec, width: 16, projectionHiddenDim: 64, projectionDim: 32, prototypes: 40 };
  const model = createModel(wide, createRandom(1));
  for (const layer of convLayers(networkLayout(wide))) {
    const { values } = variable(model, layer.conv);
    if (values.length < 1000) continue;
    const std = Math.sqrt(2 / (layer.kernel * layer.kernel * layer.outChannels));
    assert.ok(Math.abs(stdOf(values) / std - 1) < 0.1, `${layer.conv}: std ${stdOf(values)}, kaiming ${std}`);
    assert.ok(Math.abs(meanOf(values)) < (4 * std) / Math.sqrt(values.length), `${layer.conv}: mean ${meanOf(values)}`);
  }
  for (const [name, inDim] of [['head.fc1', featureDim(wide)], ['head.fc2', 64]] as const) {
    const bound = 1 / Math.sqrt(inDim);
    for (const part of ['weight', 'bias']) {
      const { values } = variable(model, `${name}.${part}`);
      assert.ok(values.every((v) => Math.abs(v) <= bound), `${name}.${part} within ±1/√${inDim}`);
    }
    const { values } = variable(model, `${name}.weight`);
    assert.ok(Math.abs(stdOf(values) / (bound / Math.sqrt(3)) - 1) < 0.1, `${name}.weight: std ${stdOf(values)} of a uniform ±${bound}`);
  }
  // The same seed gives the same store, another seed another.
  const again = createModel(wide, createRandom(1));
  const other = createModel(wide, createRandom(2));
  for (const [name, { values }] of model.variables) assert.deepEqual(again.variables.get(name)!.values, values, name);
  assert.notDeepEqual(other.variables.get('stem.conv')!.values, variable(model, 'stem.conv').values);
});

test('normalizePrototypes and normalizeRowsInPlace: unit rows in place, directions kept, zero rows stay zero', () => {
  const model = createModel(spec, createRandom(2));
  const prototypes = variable(model, 'prototypes');
  const array = prototypes.values;
  const raw = Float32Array.from({ length: 40 }, (_, i) => (i % 7) - 3 + 0.5);
  array.set(raw);
  normalizePrototypes(model);
  assert.equal(variable(model, 'prototypes').values, array, 'the same array');
  for (let row = 0; row < 5; row++) {
    const norm = Math.hypot(...raw.subarray(row * 8, row * 8 + 8));
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(array[row * 8 + i] - raw[row * 8 + i] / norm) < 1e-6);
  }
  const values = Float32Array.from([3, 4, 0, 0, -1, 0]);
  assert.equal(normalizeRowsInPlace(values, 2), values);
  assert.deepEqual(Array.from(values), [0.6, 0.8, 0, 0, -1, 0].map(Math.fround));
});

test('updateRunningStatistics: momentum 0.1 and the unbiased variance, as PyTorch; the batch statistics are used up', () => {
  const model = createModel(spec, createRandom(3));
  const runningMean = variable(model, 'stem.bn.runningMean').values;
  const runningVariance = variable(model, 'stem.bn.runningVariance').values;
  let expectedMean = [0, 0, 0, 0];
  let expectedVariance = [1, 1, 1, 1];
  const steps = [
    { mean: [0.5, -1, 2, 0], variance: [0.2, 1.5, 3, 0], count: 10 },
    { mean: [1, 1, -1, 0.25], variance: [0.4, 0.1, 2, 1], count: 4 },
  ];
  for (const { mean, variance, count } of steps) {
    const statistics: BatchStatistics = new Map([['stem.bn', { mean: Float32Array.from(mean), variance: Float32Array.from(variance), count }]]);
    updateRunningStatistics(model, statistics);
    assert.equal(statistics.size, 0, 'cleared once folded in');
    expectedMean = expectedMean.map((m, i) => 0.9 * m + 0.1 * mean[i]);
    expectedVariance = expectedVariance.map((v, i) => 0.9 * v + 0.1 * variance[i] * (count / (count - 1)));
    Array.from(runningMean).forEach((m, i) => assert.ok(Math.abs(m - expectedMean[i]) < 1e-6, `mean ${i}: ${m} vs ${expectedMean[i]}`));
    Array.from(runningVariance).forEach((v, i) => assert.ok(Math.abs(v - expectedVariance[i]) < 1e-6, `variance ${i}: ${v} vs ${expectedVariance[i]}`));
  }
  // Other layers are left alone.
  assert.ok(variable(model, 'head.bn.runningMean').values.every((v) => v === 0));
  assert.ok(variable(model, 'head.bn.runningVariance').values.every((v) => v === 1));
});

test('startStep: prototypes back on the sphere; while frozen they are left out of the updated weights', () => {
  const model = createModel(spec, createRandom(4));
  const trainable = [...trainableVariables(model).keys()];
  assert.ok(trainable.includes('prototypes') && !trainable.some((name) => name.includes('running')));
  for (const frozen of [true, false]) {
    variable(model, 'prototypes').values.fill(2);
    const updated = startStep(model, frozen);
    rowNorms(variable(model, 'prototypes').values, 8).forEach((norm) => assert.ok(Math.abs(norm - 1) < 1e-6));
    assert.deepEqual([...updated].sort(), trainable.filter((name) => !frozen || name !== 'prototypes').sort(), `frozen ${frozen}`);
  }
});

test('parameterCount, trainableVariables, weightsOf and disposeModel', () => {
  const model = createModel(spec, createRandom(5));
  // By hand for the tiny resnet: stem 3·3·1·4, block 0 two 3·3·4·4, block 1 3·3·4·8, 3·3·8·8 and a 1·1·4·8 shortcut,
  // γ and β of every BatchNorm, the head's 8→16→8 with biases, 5 prototypes of 8.
  const convolutions = 36 + 144 + 144 + 288 + 576 + 32;
  const batchNorms = 2 * (4 + 4 + 4 + 8 + 8 + 8 + 16);
  const head = 8 * 16 + 16 + 16 * 8 + 8 + 5 * 8;
  assert.equal(parameterCount(model), convolutions + batchNorms + head);
  const trainable = trainableVariables(model);
  assert.equal(trainable.size, [...model.variables.values()].filter((v) => v.trainable).length);
  assert.equal(trainable.get('stem.conv'), model.variables.get('stem.conv'), 'the store\'s own entries');
  const weights = weightsOf(model);
  assert.equal(weights.size, model.variables.size, 'weights and running statistics');
  assert.equal(weights.get('stem.bn.runningMean')!.values, variable(model, 'stem.bn.runningMean').values, 'no copy');
  disposeModel(model);
  assert.equal(model.variables.size, 0);
});

test('checkpoint: save and load give the same store; corrupt files get a clear error', async () => {
  const dir = tempDir('cl-ckpt-');
  const model = createModel(spec, createRandom(3));
  variable(model, 'stem.bn.runningMean').values.set([0.1, 0.2, 0.3, 0.4]);
  const header: CheckpointHeader = {
    format: 'cluster-lens-checkpoint',
    spec,
    options: resolveTrainOptions({}),
    epoch: 2,
    step: 40,
    elapsedMs: 1234,
    randomState: 99,
    device: 'cpu',
    savedAt: new Date().toISOString(),
  };
  const extra = new Map([['adam.first.stem.conv', { shape: [3, 3, 1, 4], values: new Float32Array(36).fill(1) }]]);
  await saveCheckpoint(checkpointPath(dir), header, model, extra);
  const loaded = await loadCheckpoint(checkpointPath(dir));
  assert.equal(loaded.header.step, 40);
  assert.equal(loaded.header.device, 'cpu');
  assert.deepEqual(loaded.header.spec, spec);
  assert.deepEqual(loaded.extra.get('adam.first.stem.conv')?.shape, [3, 3, 1, 4]);
  assert.deepEqual(Array.from(loaded.extra.get('adam.first.stem.conv')!.values), new Array(36).fill(1));
  assert.deepEqual([...loaded.model.variables.keys()], [...model.variables.keys()]);
  for (const [name, { shape, values, trainable }] of model.variables) {
    const other = loaded.model.variables.get(name)!;
    assert.deepEqual(other.shape, shape, name);
    assert.deepEqual(other.values, values, name);
    assert.equal(other.trainable, trainable, name);
    assert.notEqual(other.values, values, `${name}: a fresh array`);
  }

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
  assert.throws(() => resolveTrainOptions({ queueLength: 100, batchSize: 64 }), /queueLength/);
});
