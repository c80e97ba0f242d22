// The trainer's health signals and convergence stopping, in-process on small generated and sample folders.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { silentContext } from '../../../src/engine/jobContext';
import { train } from '../../../src/engine/jobs/train';
import type { TrainOptions } from '../../../src/protocol/options';
import type { ProgressEvent, TrainingHealth } from '../../../src/protocol/engine';
import { tempDir } from '../../tempDir';

const tiny: Partial<TrainOptions> = { imageSizePx: 12, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 6, batchSize: 8, localCrops: 1, localCropSizePx: 8, freezePrototypesSteps: 2, device: 'cpu' };
let twoColours: string;
let sampleSubset: string;

before(async () => {
  twoColours = tempDir('cl-two-colours-');
  for (const colour of ['red', 'blue']) {
    mkdirSync(path.join(twoColours, colour));
    for (let i = 0; i < 16; i++) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="${colour}"/></svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(twoColours, colour, `${i}.png`));
    }
  }
  // Eight images of each of the sample's ten classes.
  sampleSubset = tempDir('cl-sample-subset-');
  const sample = path.resolve(__dirname, '../../../sample/fashion-mnist');
  for (const label of readdirSync(sample, { withFileTypes: true }).filter((entry) => entry.isDirectory())) {
    mkdirSync(path.join(sampleSubset, label.name));
    for (const file of readdirSync(path.join(sample, label.name)).sort().slice(0, 8)) copyFileSync(path.join(sample, label.name, file), path.join(sampleSubset, label.name, file));
  }
});

/** Runs training and keeps every health reading the progress events carried, with its step. */
async function trainWatching(imagesDir: string, options: Partial<TrainOptions>) {
  const readings: { step: number; health: TrainingHealth }[] = [];
  const context = { ...silentContext(), progress: (event: ProgressEvent) => event.health && readings.push({ step: event.step ?? 0, health: event.health }) };
  const runDir = tempDir('cl-health-run-');
  const result = await train({ imagesDir, runDir, options, index: false }, context);
  return { result, readings, runDir };
}

test('health: a run forced into collapse (one prototype) is flagged collapsing from its first step, with advice', async () => {
  const { result, readings } = await trainWatching(sampleSubset, { ...tiny, prototypes: 1, epochs: 1, minutes: 0 });
  assert.equal(readings[0].step, 1);
  assert.equal(readings[0].health.state, 'collapsing');
  assert.ok(readings.every((reading) => reading.health.state === 'collapsing'));
  assert.match(readings[0].health.advice, /learning rate|queue/);
  assert.equal(result.health?.state, 'collapsing');
});

test('health: healthy training on sample images is never flagged collapsing or diverged', async () => {
  const { result, readings } = await trainWatching(sampleSubset, { ...tiny, prototypes: 10, epochs: 3, minutes: 0 });
  assert.equal(result.stopReason, 'epochs');
  assert.ok(readings.length >= 3 * 10);
  const flagged = readings.filter((reading) => reading.health.state === 'collapsing' || reading.health.state === 'diverged');
  assert.deepEqual(flagged, []);
  const last = readings.at(-1)!.health;
  assert.equal(last.epochsObserved, 3);
  assert.ok(last.prototypesUsed >= 5, `${last.prototypesUsed} prototypes used`);
  assert.ok(last.changedShare !== undefined && last.changedShare >= 0 && last.changedShare <= 1);
  assert.ok(Math.abs(last.lossReference - Math.log(10)) < 1e-12);
});

test('convergence: a two-colour folder stops early, once converged, and says so; --epochs forces its budget', async () => {
  const { result, runDir } = await trainWatching(twoColours, { ...tiny, prototypes: 4, batchSize: 16, epochs: 0, minutes: 5 });
  assert.equal(result.stopReason, 'converged');
  assert.equal(result.health?.state, 'converged');
  assert.ok(result.epochs >= 8 && result.epochs < 200, `${result.epochs} epochs`);
  assert.ok(result.durationMs < 5 * 60_000);
  // metrics.jsonl has one health line per epoch beside the step lines.
  const lines = readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { health?: TrainingHealth });
  assert.equal(lines.filter((line) => line.health).length, result.epochs);
  assert.equal(lines.at(-1)!.health!.state, 'converged');

  const forced = await trainWatching(twoColours, { ...tiny, prototypes: 4, batchSize: 16, epochs: result.epochs + 2, minutes: 0 });
  assert.equal(forced.result.stopReason, 'epochs');
  assert.equal(forced.result.epochs, result.epochs + 2);
});
