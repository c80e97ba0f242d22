// The trainer in-process on the CPU: exact resume after a cancel, cancels while indexing, and the queue joining once full.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { silentContext } from '../../../src/engine/jobContext';
import { loadCheckpoint } from '../../../src/engine/model/checkpoint';
import { disposeModel } from '../../../src/engine/model/model';
import { train } from '../../../src/engine/jobs/train';
import type { TrainOptions } from '../../../src/protocol/options';
import { tempDir } from '../../tempDir';

const baseOptions: Partial<TrainOptions> = { imageSizePx: 12, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 6, batchSize: 8, localCrops: 1, localCropSizePx: 8, epochs: 2, minutes: 0, freezePrototypesSteps: 2, device: 'cpu' };
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
  const values = new Map([...checkpoint.model.variables].map(([name, v]) => [name, v.values]));
  disposeModel(checkpoint.model);
  return values;
}

test('trainer: a run cancelled mid-epoch and resumed ends with the same weights as one straight run', async () => {
  const options = baseOptions;
  const straightDir = tempDir('cl-straight-');
  const straight = await train({ imagesDir, runDir: straightDir, options, index: false }, silentContext());
  assert.equal(straight.steps, 6);
  assert.equal(straight.device, 'cpu');
  for (const retired of ['backend', 'trainingRuntime']) assert.equal(retired in straight, false, `no ${retired} in the result`);

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
  // The weights moved between step 1 and step 6: the steps train (the running statistics too).
  const start = await (async () => {
    const firstDir = tempDir('cl-one-step-');
    const controllerOne = new AbortController();
    await train({ imagesDir, runDir: firstDir, options, index: false }, { ...silentContext(controllerOne.signal), progress: (event: { step?: number }) => event.step === 1 && controllerOne.abort() });
    return weights(firstDir);
  })();
  for (const name of ['stem.conv', 'head.fc2.weight', 'stem.bn.runningMean']) {
    const moved = a.get(name)!.reduce((max, v, i) => Math.max(max, Math.abs(v - start.get(name)![i])), 0);
    assert.ok(moved > 1e-4, `${name} moved by ${moved} between step 1 and step 6`);
  }
});

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

/** Each step's loss, from the run's metrics.jsonl. */
function stepLosses(runDir: string): number[] {
  const lines = readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { step?: number; loss?: number; health?: unknown });
  return lines.filter((line) => line.step !== undefined && line.health === undefined).map((line) => line.loss!);
}

test('trainer: the queue joins Sinkhorn once full: the steps before match a run without it, the next one differs', async () => {
  // 24 images in batches of 8: three steps; a queue of 16 fills after two.
  const options = { ...baseOptions, epochs: 1 };
  const plainDir = tempDir('cl-no-queue-');
  const queuedDir = tempDir('cl-queue-');
  await train({ imagesDir, runDir: plainDir, options, index: false }, silentContext());
  const queued = await train({ imagesDir, runDir: queuedDir, options: { ...options, queueLength: 16, queueStartEpoch: 0 }, index: false }, silentContext());
  assert.equal(queued.steps, 3);
  assert.ok(Number.isFinite(queued.finalLoss));
  const [plain, withQueue] = [stepLosses(plainDir), stepLosses(queuedDir)];
  assert.equal(plain.length, 3);
  assert.equal(withQueue.length, 3);
  for (const step of [0, 1]) assert.ok(Math.abs(plain[step] - withQueue[step]) < 1e-6, `step ${step + 1}: the queue is not full yet (${plain[step]} vs ${withQueue[step]})`);
  assert.ok(Math.abs(plain[2] - withQueue[2]) > 1e-4, `step 3: the full queue changes the codes and the loss (${plain[2]} vs ${withQueue[2]})`);
});
