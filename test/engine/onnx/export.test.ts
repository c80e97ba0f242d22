// Export: onnxruntime runs the exported file and agrees with the engine's own eval forward pass.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { initBackend } from '../../../src/engine/runtime/tfjs/backend';
import { silentContext } from '../../../src/engine/jobContext';
import { loadCheckpoint } from '../../../src/engine/model/checkpoint';
import { createModel, disposeModel, forward, type ModelSpec, type SwavModel } from '../../../src/engine/model/model';
import { exportOnnx } from '../../../src/engine/jobs/exportOnnx';
import { buildOnnxModel, samePadding, type WeightMap } from '../../../src/engine/onnx/export';
import { parseOnnx } from '../../../src/engine/onnx/graph';
import { OrtBackbone } from '../../../src/engine/frozen/ortBackbone';
import { OrtModel } from '../../../src/engine/runtime/session';
import { train } from '../../../src/engine/jobs/train';
import { createRandom } from '../../../src/engine/util/random';
import type { TrainOptions } from '../../../src/protocol/options';
import { assertClose, randomPixels, tensorOf, toNchw } from './helpers';
import { tempDir } from '../../tempDir';

const options: Partial<TrainOptions> = { imageSizePx: 12, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 6, batchSize: 8, localCrops: 1, localCropSizePx: 8, epochs: 2, minutes: 0, freezePrototypesSteps: 1, backend: 'wasm' };
let runDir: string;

before(async () => {
  await initBackend('wasm');
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

async function engineOutputs(model: SwavModel, pixels: Float32Array, count: number, sizePx: number) {
  const images = tensorOf(pixels, count, sizePx, model.spec.channels);
  const out = forward(model, images, 'eval');
  const values = { embedding: out.embedding.dataSync(), prototype_scores: out.scores.dataSync(), features: out.features.dataSync() };
  tf.dispose([images, out.embedding, out.scores, out.features]);
  return values;
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

test('export: onnxruntime runs the exported run and matches the engine eval forward pass to 1e-4, at any batch size', async () => {
  const outPath = path.join(runDir, 'model.onnx');
  const result = await exportOnnx(runDir, outPath);
  assert.equal(result.outPath, outPath);
  assert.equal(result.opset, 17);
  const { model, header } = await loadCheckpoint(path.join(runDir, 'checkpoint.ckpt'));
  const baseline = tf.memory().numTensors;
  const bytes = readFileSync(outPath);
  const { channels } = model.spec;
  for (const count of [5, 1]) {
    const pixels = randomPixels(count, 12, channels, count);
    const expected = await engineOutputs(model, pixels, count, 12);
    const actual = await ortOutputs(bytes, pixels, count, 12, channels);
    for (const name of ['embedding', 'prototype_scores', 'features'] as const) assertClose(actual[name], expected[name], 1e-4, `${name} (batch ${count})`);
  }
  assert.equal(tf.memory().numTensors, baseline);
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
        tf.tidy(() => variable.assign(tf.tensor(Float32Array.from({ length: variable.size }, () => random.uniform(low, low + 1)), variable.shape)));
      }
    }
    const weights: WeightMap = new Map([...model.variables].map(([name, v]) => [name, { shape: v.shape, values: v.dataSync() as Float32Array }]));
    const bytes = buildOnnxModel(spec, weights, { imageSizePx: sizePx });
    const pixels = randomPixels(3, sizePx, 3, sizePx);
    const expected = await engineOutputs(model, pixels, 3, sizePx);
    const actual = await ortOutputs(bytes, pixels, 3, sizePx, 3);
    for (const name of ['embedding', 'prototype_scores', 'features'] as const) assertClose(actual[name], expected[name], 1e-4, `${name} at ${sizePx} px (${architecture})`);

    // The exported network also imports as a backbone.
    const backbone = await OrtBackbone.fromBytes(bytes, parseOnnx(bytes, 'export'));
    assertClose(await backbone.features(pixels, 3, sizePx, sizePx, 3), expected.features, 1e-4, `imported features at ${sizePx} px`);
    await backbone.dispose();
    disposeModel(model);
  }
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

