// Export: onnxruntime runs the exported file and agrees with the engine's own eval graphs (buildForwardGraph and
// headGraph, separate code paths over the same layout) and with a plain-JS forward pass written in the tests.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { silentContext } from '../../../src/engine/jobContext';
import { loadCheckpoint } from '../../../src/engine/model/checkpoint';
import { createModel, disposeModel, featureDim, weightsOf, type ModelSpec, type SwavModel } from '../../../src/engine/model/model';
import { buildForwardGraph, headGraph } from '../../../src/engine/runtime/explainGraph';
import { exportOnnx } from '../../../src/engine/jobs/exportOnnx';
import { buildOnnxModel, samePadding, type WeightMap } from '../../../src/engine/onnx/export';
import { parseOnnx } from '../../../src/engine/onnx/graph';
import { OrtBackbone } from '../../../src/engine/frozen/ortBackbone';
import { OrtModel } from '../../../src/engine/runtime/session';
import { train } from '../../../src/engine/jobs/train';
import { createRandom } from '../../../src/engine/util/random';
import type { TrainOptions } from '../../../src/protocol/options';
import { assertClose, randomPixels, referenceForward, toNchw } from './helpers';
import { tinySpec } from '../model/tinySpec';
import { tempDir } from '../../tempDir';

const options: Partial<TrainOptions> = { imageSizePx: 12, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 6, batchSize: 8, localCrops: 1, localCropSizePx: 8, epochs: 2, minutes: 0, freezePrototypesSteps: 1 };
let runDir: string;

before(async () => {
  const imagesDir = tempDir('cl-onnx-export-');
  for (const [label, colour] of [['red', '#c33'], ['blue', '#36c']] as const) {
    mkdirSync(path.join(imagesDir, label));
    for (let i = 0; i < 8; i++) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24"><rect width="24" height="24" fill="#222"/><circle cx="${6 + i}" cy="${8 + (i % 4)}" r="${4 + (i % 3)}" fill="${colour}"/></svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(imagesDir, label, `${i}.png`));
    }
  }
  runDir = tempDir('cl-onnx-run-');
  await train({ imagesDir, runDir, options, index: false }, silentContext());
});

type Outputs = Record<'embedding' | 'prototype_scores' | 'features', Float32Array>;

/** The engine's eval graphs of the model: the forward graph's features and scores, the head graph's embedding on those features. */
async function engineOutputs(model: SwavModel, pixels: Float32Array, count: number, sizePx: number): Promise<Outputs> {
  const weights = weightsOf(model);
  const forwardModel = await OrtModel.open(buildForwardGraph(model.spec, weights, { batch: count, imageSizePx: sizePx }), 'forward', { device: 'cpu' });
  const headModel = await OrtModel.open(headGraph(weights, { batch: count, featureDim: featureDim(model.spec) }), 'head', { device: 'cpu' });
  try {
    const forwarded = await forwardModel.run({ images: { data: pixels, dims: [count, sizePx, sizePx, model.spec.channels] } }, ['features', 'scores']);
    const features = forwarded.features.data as Float32Array;
    const head = await headModel.run({ features: { data: features, dims: forwarded.features.dims } }, ['embedding', 'scores']);
    assertClose(head.scores.data, forwarded.scores.data, 1e-5, 'the head graph\'s scores on the forward graph\'s features');
    return { embedding: head.embedding.data as Float32Array, prototype_scores: forwarded.scores.data as Float32Array, features };
  } finally {
    await Promise.all([forwardModel.dispose(), headModel.dispose()]);
  }
}

/** The plain-JS forward pass (helpers.ts), under the export's output names. */
function referenceOutputs(model: SwavModel, pixels: Float32Array, count: number, sizePx: number): Outputs {
  const { features, embedding, scores } = referenceForward(model.spec, model.variables, pixels, count, sizePx);
  return { features, embedding, prototype_scores: scores };
}

async function ortOutputs(bytes: Uint8Array, pixels: Float32Array, count: number, sizePx: number, channels: number) {
  const model = await OrtModel.open(bytes, 'export');
  try {
    const names = ['embedding', 'prototype_scores', 'features'];
    const out = await model.run({ images: { data: toNchw(pixels, count, sizePx, channels), dims: [count, channels, sizePx, sizePx] } }, names);
    return Object.fromEntries(names.map((name) => [name, out[name].data]));
  } finally {
    await model.dispose();
  }
}

test('export: onnxruntime runs the exported run and matches the engine\'s eval graphs and a plain-JS forward pass to 1e-4, at any batch size', async () => {
  const outPath = path.join(runDir, 'model.onnx');
  const result = await exportOnnx(runDir, outPath);
  assert.equal(result.outPath, outPath);
  assert.equal(result.opset, 17);
  const { model, header } = await loadCheckpoint(path.join(runDir, 'checkpoint.ckpt'));
  const bytes = readFileSync(outPath);
  const { channels } = model.spec;
  for (const count of [5, 1]) {
    const pixels = randomPixels(count, 12, channels, count);
    const expected = await engineOutputs(model, pixels, count, 12);
    const reference = referenceOutputs(model, pixels, count, 12);
    const actual = await ortOutputs(bytes, pixels, count, 12, channels);
    for (const name of ['embedding', 'prototype_scores', 'features'] as const) {
      assertClose(actual[name], expected[name], 1e-4, `${name} (batch ${count}) against the eval graphs`);
      assertClose(actual[name], reference[name], 1e-4, `${name} (batch ${count}) against the plain-JS forward`);
    }
  }
  assert.ok(header.step > 0);
  disposeModel(model);

  // The file documents itself and reads back through the importer.
  const graph = parseOnnx(bytes, outPath);
  assert.equal(graph.opset, 17);
  assert.deepEqual(graph.inputs[0].dims, ['batch', channels, 12, 12]);
  assert.deepEqual(graph.outputs.map((o) => o.name), ['embedding', 'prototype_scores', 'features']);
  assert.match(graph.docString, /NCHW/);
  assert.equal(graph.metadata.get('cluster-lens.imageSizePx'), '12');
  assert.equal(graph.nodes.filter((node) => node.opType === 'BatchNormalization').length, 0, 'BatchNorm is folded');
});

test('export: folded BatchNorm and TensorFlow same padding hold for a stride-2 stem at odd and even sizes, and for the plain network', async () => {
  for (const [sizePx, architecture] of [[13, 'resnet'], [16, 'resnet'], [13, 'plain']] as const) {
    const spec: ModelSpec = { channels: 3, stemStride: 2, width: 4, blocksPerStage: [1, 2], projectionHiddenDim: 12, projectionDim: 6, prototypes: 5, inputMean: [0.4, 0.5, 0.6], inputStd: [0.2, 0.25, 0.3], architecture };
    const model = createModel(spec, createRandom(sizePx));
    // Running statistics far from (0, 1), so a wrong fold shows.
    const random = createRandom(7);
    for (const [name, variable] of model.variables) {
      if (/\.(gamma|beta|runningMean|runningVariance)$/.test(name)) {
        const low = name.endsWith('runningVariance') || name.endsWith('gamma') ? 0.5 : -0.5;
        for (let i = 0; i < variable.values.length; i++) variable.values[i] = random.uniform(low, low + 1);
      }
    }
    const weights: WeightMap = weightsOf(model);
    const bytes = buildOnnxModel(spec, weights, { imageSizePx: sizePx });
    const pixels = randomPixels(3, sizePx, 3, sizePx);
    const expected = await engineOutputs(model, pixels, 3, sizePx);
    const reference = referenceOutputs(model, pixels, 3, sizePx);
    const actual = await ortOutputs(bytes, pixels, 3, sizePx, 3);
    for (const name of ['embedding', 'prototype_scores', 'features'] as const) {
      assertClose(actual[name], expected[name], 1e-4, `${name} at ${sizePx} px (${architecture}) against the eval graphs`);
      assertClose(actual[name], reference[name], 1e-4, `${name} at ${sizePx} px (${architecture}) against the plain-JS forward`);
    }

    // The exported network also imports as a backbone.
    const backbone = await OrtBackbone.fromBytes(bytes, parseOnnx(bytes, 'export'));
    assertClose(await backbone.features(pixels, 3, sizePx, sizePx, 3), expected.features, 1e-4, `imported features at ${sizePx} px`);
    await backbone.dispose();
    disposeModel(model);
  }
});

test('export: the tiny grey network (stride-1 stem, identity and projection shortcuts) matches the plain-JS forward, and a changed weight changes the export', async () => {
  const model = createModel(tinySpec, createRandom(3));
  const pixels = randomPixels(2, 8, 1, 5);
  const exported = async () => ortOutputs(buildOnnxModel(tinySpec, weightsOf(model), { imageSizePx: 8 }), pixels, 2, 8, 1);
  const before = await exported();
  const reference = referenceOutputs(model, pixels, 2, 8);
  for (const name of ['embedding', 'prototype_scores', 'features'] as const) assertClose(before[name], reference[name], 1e-5, `${name} (tiny)`);
  // The reference and the export both see the store's arrays: a new stem filter moves both, and they still agree.
  const stem = model.variables.get('stem.conv')!.values;
  for (let i = 0; i < stem.length; i++) stem[i] *= -1.5;
  const after = await exported();
  assert.ok(Math.max(...after.features.map((v, i) => Math.abs(v - before.features[i]))) > 1e-3, 'the export follows the weights');
  assertClose(after.features, referenceOutputs(model, pixels, 2, 8).features, 1e-5, 'features after the change');
  disposeModel(model);
});

test('export: same padding puts the odd pixel at the end, as TensorFlow does', () => {
  assert.deepEqual(samePadding(12, 3, 2), { begin: 0, end: 1, output: 6 });
  assert.deepEqual(samePadding(13, 3, 2), { begin: 1, end: 1, output: 7 });
  assert.deepEqual(samePadding(12, 3, 1), { begin: 1, end: 1, output: 12 });
  assert.deepEqual(samePadding(12, 1, 2), { begin: 0, end: 0, output: 6 });
});

test('export: a folder without a checkpoint is a clear error', async () => {
  const empty = tempDir('cl-onnx-empty-');
  await assert.rejects(exportOnnx(empty, path.join(empty, 'model.onnx')), (error: Error & { code?: string }) => error.code === 'NO_CHECKPOINT' && error.message.includes(empty));
});

