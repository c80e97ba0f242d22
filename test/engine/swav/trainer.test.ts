// The trainer in-process on wasm: exact resume after a cancel, and no tensor leaks across runs.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { silentContext } from '../../../src/engine/jobContext';
import { loadCheckpoint } from '../../../src/engine/model/checkpoint';
import { disposeModel } from '../../../src/engine/model/model';
import { train } from '../../../src/engine/jobs/train';
import { chooseTrainingRuntime } from '../../../src/engine/swav/trainer';
import type { TrainOptions } from '../../../src/protocol/options';
import { tempDir } from '../../tempDir';

const baseOptions: Partial<TrainOptions> = { imageSizePx: 12, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 6, batchSize: 8, localCrops: 1, localCropSizePx: 8, epochs: 2, minutes: 0, freezePrototypesSteps: 2, backend: 'wasm' };
let imagesDir: string;

before(async () => {
  imagesDir = tempDir('cl-trainer-');
  // Two visually distinct classes: bright squares and dark stripes.
  for (const [label, draw] of [['squares', (i: number) => `<rect x="${4 + (i % 5)}" y="${4 + (i % 3)}" width="14" height="14" fill="white"/>`], ['stripes', (i: number) => `<rect x="0" y="${i % 7}" width="32" height="6" fill="#888"/><rect x="0" y="${16 + (i % 5)}" width="32" height="6" fill="#888"/>`]] as const) {
    mkdirSync(path.join(imagesDir, label));
    for (let i = 0; i < 12; i++) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32" fill="black"/>${draw(i)}</svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(imagesDir, label, `${i}.png`));
    }
  }
});

async function weights(runDir: string): Promise<Map<string, Float32Array>> {
  const checkpoint = await loadCheckpoint(path.join(runDir, 'checkpoint.ckpt'));
  const values = new Map([...checkpoint.model.variables].map(([name, v]) => [name, v.dataSync() as Float32Array]));
  disposeModel(checkpoint.model);
  return values;
}

for (const trainingRuntime of ['onnxruntime', 'tfjs'] as const) {
test(`trainer (${trainingRuntime}): a run cancelled mid-epoch and resumed ends with the same weights as one straight run`, async () => {
  const options = { ...baseOptions, trainingRuntime };
  const straightDir = tempDir('cl-straight-');
  const straight = await train({ imagesDir, runDir: straightDir, options, index: false }, silentContext());
  assert.equal(straight.steps, 6);
  assert.equal(straight.trainingRuntime, trainingRuntime);

  const resumedDir = tempDir('cl-resumed-');
  const controller = new AbortController();
  const context = { ...silentContext(controller.signal), progress: (event: { step?: number }) => event.step === 4 && controller.abort() };
  const cancelled = await train({ imagesDir, runDir: resumedDir, options, index: false }, context);
  assert.equal(cancelled.cancelled, true);
  assert.equal(cancelled.steps, 4);
  const resumed = await train({ imagesDir, runDir: resumedDir, resume: true, index: false }, silentContext());
  assert.equal(resumed.steps, 6);

  const [a, b] = [await weights(straightDir), await weights(resumedDir)];
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [name, values] of a) {
    const other = b.get(name)!;
    const difference = values.reduce((max, v, i) => Math.max(max, Math.abs(v - other[i])), 0);
    assert.ok(difference < 1e-5, `${name} differs by ${difference}`);
  }
});
}

test('trainer: a cancel during training still indexes; a cancel during the final indexing stops it and keeps the checkpoint', async () => {
  const duringTraining = new AbortController();
  const firstDir = tempDir('cl-cancel-train-');
  const trainingContext = { ...silentContext(duringTraining.signal), progress: (event: { step?: number }) => event.step === 2 && duringTraining.abort() };
  const cancelledTraining = await train({ imagesDir, runDir: firstDir, options: baseOptions }, trainingContext);
  assert.equal(cancelledTraining.cancelled, true);
  assert.ok(cancelledTraining.indexPath && existsSync(cancelledTraining.indexPath), 'indexed after a cancel while training');

  const duringIndexing = new AbortController();
  const secondDir = tempDir('cl-cancel-index-');
  const logs: string[] = [];
  const indexingContext = {
    ...silentContext(duringIndexing.signal),
    log: (_level: string, message: string) => logs.push(message),
    progress: (event: { phase?: string }) => event.phase === 'index' && duringIndexing.abort(),
  };
  const cancelledIndexing = await train({ imagesDir, runDir: secondDir, options: baseOptions }, indexingContext);
  assert.equal(cancelledIndexing.steps, 6, 'training ran to its end');
  assert.equal(cancelledIndexing.cancelled, true);
  assert.equal(cancelledIndexing.indexPath, undefined);
  assert.equal(existsSync(path.join(secondDir, 'index.bin')), false);
  assert.ok(existsSync(path.join(secondDir, 'checkpoint.ckpt')), 'the checkpoint is kept');
  assert.ok(logs.some((message) => /Indexing cancelled.*cluster-lens index/.test(message)), logs.join('\n'));
});

test('trainer: repeated runs leave no tensors behind', async () => {
  const options = baseOptions;
  const runDir = tempDir('cl-leak-');
  await train({ imagesDir, runDir, options: { ...options, epochs: 1 } }, silentContext());
  const baseline = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) await train({ imagesDir, runDir, options: { ...options, epochs: 1, queueLength: 16, queueStartEpoch: 0 } }, silentContext());
  assert.equal(tf.memory().numTensors, baseline);
});

test('training runtime: auto takes onnxruntime on any device and names the device; an explicit tfjs stays on the CPU and warns on a GPU', () => {
  const logs: { level: string; message: string }[] = [];
  const context = { log: (level: string, message: string) => logs.push({ level, message }) };
  const wasm = { name: 'wasm' as const, gpu: false, skipped: [] };
  const cpu = { device: 'cpu' as const, label: 'cpu', skipped: [] };
  const gpu = { device: 'webgpu' as const, adapter: 'NVIDIA H200', label: 'webgpu (NVIDIA H200, Vulkan)', skipped: [] };
  assert.equal(chooseTrainingRuntime('auto', wasm, cpu, context), 'onnxruntime');
  assert.match(logs.at(-1)!.message, /onnxruntime \(cpu\)/);
  assert.equal(chooseTrainingRuntime('auto', wasm, gpu, context), 'onnxruntime');
  assert.match(logs.at(-1)!.message, /onnxruntime \(webgpu \(NVIDIA H200, Vulkan\)\)/);
  assert.equal(chooseTrainingRuntime('tfjs', wasm, gpu, context), 'tfjs');
  assert.equal(logs.at(-1)!.level, 'warn');
  assert.equal(chooseTrainingRuntime('onnxruntime', wasm, cpu, context), 'onnxruntime');
});
