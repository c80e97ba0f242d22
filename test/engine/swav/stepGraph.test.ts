import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { createHeadModel } from '../../../src/engine/frozen/headTrainer';
import { createModel, forward, head, trainableVariables, type BatchStatistics, type ModelSpec } from '../../../src/engine/model/model';
import { OrtStepGradients } from '../../../src/engine/swav/ortGradients';
import { OrtModel } from '../../../src/engine/runtime/session';
import { buildTrainingGraph, trainingGraphNames as names } from '../../../src/engine/runtime/trainingGraph';
import { swapLoss } from '../../../src/engine/swav/loss';
import { createRandom } from '../../../src/engine/util/random';
import { assertClose, randomPixels } from '../onnx/helpers';
import { tinySpec } from '../model/tinySpec';

const resnetSpec: ModelSpec = tinySpec;
const loss = { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3, cropsForAssign: [0, 1] };

/** Loss, gradients and statistics from the engine's tfjs network, the reference the graph must match. */
function tfjsStep(model: ReturnType<typeof createModel>, global: tf.Tensor4D, local: tf.Tensor4D, batch: number, queue?: tf.Tensor2D[]) {
  const statistics: BatchStatistics = new Map();
  let embedding: Float32Array = new Float32Array();
  const { value, grads } = tf.variableGrads(() => {
    const globalOut = forward(model, global, 'train', statistics);
    const localOut = forward(model, local, 'train');
    embedding = globalOut.embedding.dataSync() as Float32Array;
    const rows = (x: tf.Tensor2D, parts: number) => Array.from({ length: parts }, (_, i) => tf.slice(x, [i * batch, 0], [batch, -1]));
    return swapLoss([...rows(globalOut.scores, 2), ...rows(localOut.scores, local.shape[0] / batch)], loss, queue);
  }, trainableVariables(model));
  const byName = new Map([...model.variables].map(([name, v]) => [v.name, name]));
  const gradients = new Map(Object.entries(grads).map(([id, g]) => [byName.get(id)!, g.dataSync() as Float32Array]));
  return { loss: value.dataSync()[0], gradients, statistics, embedding };
}

async function compare(options: { globalPx: number; localPx: number; queueRows: number; architecture?: 'resnet' | 'plain' }) {
  await tf.setBackend('cpu');
  const batch = 4;
  const localCrops = 2;
  const spec = { ...resnetSpec, architecture: options.architecture };
  const model = createModel(spec, createRandom(3));
  const globalPixels = randomPixels(2 * batch, options.globalPx, 1, 5);
  const localPixels = randomPixels(localCrops * batch, options.localPx, 1, 6);
  const global = tf.tensor4d(globalPixels, [2 * batch, options.globalPx, options.globalPx, 1]);
  const local = tf.tensor4d(localPixels, [localCrops * batch, options.localPx, options.localPx, 1]);
  const random = createRandom(9);
  const queue = options.queueRows ? [0, 1].map(() => tf.tensor2d(Float32Array.from({ length: options.queueRows * spec.prototypes }, () => random.uniform(-1, 1)), [options.queueRows, spec.prototypes])) : undefined;
  const expected = tfjsStep(model, global, local, batch, queue);

  const trainable = trainableVariables(model);
  const names_ = [...model.variables].filter(([, v]) => trainable.includes(v)).map(([name]) => name);
  const shapes = new Map(names_.map((name) => [name, model.variables.get(name)!.shape]));
  const graph = buildTrainingGraph(spec, shapes, { batch, globalCrops: 2, globalSizePx: options.globalPx, localCrops, localSizePx: options.localPx, queueRows: options.queueRows }, loss);
  const session = await OrtModel.open(graph.bytes, 'training graph', { threads: 1 });
  const feeds: Record<string, { data: Float32Array; dims: number[] }> = {
    [names.globalCrops]: { data: globalPixels, dims: global.shape },
    [names.localCrops]: { data: localPixels, dims: local.shape },
  };
  for (const name of graph.variables) feeds[name] = { data: model.variables.get(name)!.dataSync() as Float32Array, dims: shapes.get(name)! };
  queue?.forEach((scores, i) => (feeds[names.queueScores(i)] = { data: scores.dataSync() as Float32Array, dims: scores.shape }));
  const wanted = [names.loss, names.globalEmbedding, ...graph.variables.map(names.gradient), ...graph.batchNormLayers.flatMap(({ layer }) => [names.batchMean(layer), names.batchVariance(layer)])];
  const actual = await session.run(feeds, wanted);
  await session.dispose();

  assert.ok(Math.abs(actual[names.loss].data[0] - expected.loss) < 1e-4, `loss ${actual[names.loss].data[0]} vs ${expected.loss}`);
  assertClose(actual[names.globalEmbedding].data, expected.embedding, 1e-4, 'global embeddings');
  assert.equal(graph.variables.length, expected.gradients.size);
  for (const name of graph.variables) {
    const reference = expected.gradients.get(name)!;
    if (name === 'head.fc1.bias') {
      // BatchNorm follows it, so its true gradient is 0: both sides must be rounding noise.
      assert.ok(Math.max(...Array.from(actual[names.gradient(name)].data, Math.abs)) < 1e-5, 'the bias before a BatchNorm gets ~0 gradient');
      continue;
    }
    const scale = Math.max(...Array.from(reference, Math.abs));
    assertClose(actual[names.gradient(name)].data, reference, 1e-3 * Math.max(scale, 1e-3), `gradient of ${name}`);
  }
  assert.deepEqual([...expected.statistics.keys()].sort(), graph.batchNormLayers.map(({ layer }) => layer).sort());
  for (const { layer, positions } of graph.batchNormLayers) assert.equal(positions, expected.statistics.get(layer)!.count, `positions of ${layer}`);
  for (const [layer, { mean, variance }] of expected.statistics) {
    assertClose(actual[names.batchMean(layer)].data, mean.dataSync(), 1e-4, `batch mean of ${layer}`);
    assertClose(actual[names.batchVariance(layer)].data, variance.dataSync(), 1e-4, `batch variance of ${layer}`);
  }
}

test('the ONNX training step matches the tfjs network: loss, every gradient, batch statistics (odd sizes, both filter-gradient paths)', async () => {
  await compare({ globalPx: 13, localPx: 7, queueRows: 0 });
});

test('the ONNX training step matches the tfjs network with queue rows in Sinkhorn, at even sizes', async () => {
  await compare({ globalPx: 12, localPx: 6, queueRows: 12 });
});

test('the ONNX training step matches the tfjs network for the plain architecture (no stem, no shortcuts)', async () => {
  await compare({ globalPx: 11, localPx: 6, queueRows: 0, architecture: 'plain' });
});

test('the head-only step (a frozen backbone\'s features in) matches the tfjs head: loss, its gradients, its batch statistics', async () => {
  await tf.setBackend('cpu');
  const batch = 4;
  const featureDim = 12;
  const localCrops = 2;
  const headModel = createHeadModel(featureDim, { projectionHiddenDim: 16, projectionDim: 8, prototypes: 5 }, createRandom(4));
  const random = createRandom(8);
  const features = (rows: number) => Float32Array.from({ length: rows * featureDim }, () => random.uniform(0, 2));
  const global = features(2 * batch);
  const local = features(localCrops * batch);
  const statistics: BatchStatistics = new Map();
  const { value, grads } = tf.variableGrads(() => {
    const rows = (x: tf.Tensor2D, parts: number) => Array.from({ length: parts }, (_, i) => tf.slice(x, [i * batch, 0], [batch, -1]));
    const globalScores = head(headModel, tf.tensor2d(global, [2 * batch, featureDim]), 'train', statistics).scores;
    const localScores = head(headModel, tf.tensor2d(local, [localCrops * batch, featureDim]), 'train').scores;
    return swapLoss([...rows(globalScores, 2), ...rows(localScores, localCrops)], loss);
  }, trainableVariables(headModel));
  const byName = new Map([...headModel.variables].map(([name, v]) => [v.name, name]));
  const expected = new Map(Object.entries(grads).map(([id, g]) => [byName.get(id)!, g.dataSync() as Float32Array]));

  const trainable = trainableVariables(headModel);
  const shapes = new Map([...headModel.variables].filter(([, v]) => trainable.includes(v)).map(([name, v]) => [name, v.shape]));
  const step = new OrtStepGradients(headModel.spec, shapes, { batch, globalCrops: 2, globalSizePx: 0, localCrops, localSizePx: 0, featuresFrom: { featureDim } }, loss, 1);
  const weights = new Map([...shapes.keys()].map((name) => [name, headModel.variables.get(name)!.dataSync() as Float32Array]));
  const actual = await step.compute({ features: { global, local }, weights });
  await step.dispose();
  assert.ok(Math.abs(actual.loss - value.dataSync()[0]) < 1e-4, `loss ${actual.loss} vs ${value.dataSync()[0]}`);
  assert.deepEqual([...actual.gradients.keys()].sort(), [...expected.keys()].sort(), 'a gradient for each of the head\'s weights, no backbone');
  for (const [name, reference] of expected) {
    if (name === 'head.fc1.bias') continue; // BatchNorm follows it: both sides are rounding noise
    const scale = Math.max(...Array.from(reference, Math.abs));
    assertClose(actual.gradients.get(name)!, reference, 1e-3 * Math.max(scale, 1e-3), `gradient of ${name}`);
  }
  assertClose(actual.statistics.get('head.bn')!.mean, statistics.get('head.bn')!.mean.dataSync(), 1e-4, 'batch mean of head.bn');
  assertClose(actual.statistics.get('head.bn')!.variance, statistics.get('head.bn')!.variance.dataSync(), 1e-4, 'batch variance of head.bn');
});
