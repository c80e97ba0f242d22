import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { engineEnvironment, isImageFile, isInRun, listRuns, newRunName, readHealthHistory, readTrainingHistory, retiredSettings, retiredSettingsMessage, runsRoot, trainOptionsFromSettings, type TrainSettings } from '../../src/host/runs';
import { tempDir } from '../tempDir';

test('runs: listed newest first; folders that are not runs are left out', async () => {
  const root = tempDir('cl-runs-');
  for (const [name, createdAt] of [['old', '2026-01-01T00:00:00Z'], ['new', '2026-02-01T00:00:00Z']]) {
    mkdirSync(path.join(root, name));
    writeFileSync(path.join(root, name, 'run.json'), JSON.stringify({ imagesDir: '/img', createdAt, images: 3 }));
  }
  writeFileSync(path.join(root, 'new', 'index.bin'), '');
  mkdirSync(path.join(root, 'not-a-run'));
  mkdirSync(path.join(root, 'damaged'));
  writeFileSync(path.join(root, 'damaged', 'run.json'), '{oops');
  const runs = await listRuns(root);
  assert.deepEqual(runs.map((r) => [r.name, r.hasIndex]), [['new', true], ['old', false]]);
  assert.deepEqual(await listRuns(path.join(root, 'missing')), []);
});

test('runs: names, roots, settings and image files', () => {
  assert.equal(newRunName('/data/my photos!', new Date('2026-11-22T10:11:12.345Z')), 'my-photos-20261122T101112Z');
  assert.equal(runsRoot('', '/ws', '/home'), '/ws/.cluster-lens');
  assert.equal(runsRoot('/abs/runs', '/ws', '/home'), '/abs/runs');
  assert.equal(runsRoot('runs', undefined, '/home'), '/home/runs');
  assert.deepEqual(trainOptionsFromSettings({ imageSizePx: 0, prototypes: 0, epochs: 0, minutes: 0 }), {});
  assert.deepEqual(trainOptionsFromSettings({ imageSizePx: 32, epochs: 5, minutes: 0 }), { imageSizePx: 32, epochs: 5, minutes: 0 });
  // The TensorFlow.js era's settings, still in a user's settings.json, do not reach the engine.
  const old = { backend: 'wasm', trainingRuntime: 'tfjs', prototypes: 12 } as unknown as Partial<TrainSettings>;
  assert.deepEqual(trainOptionsFromSettings(old), { prototypes: 12 });
  assert.deepEqual(trainOptionsFromSettings({ minutes: 3 }), { minutes: 3 });
  assert.ok(isImageFile('/a/b.JPG') && isImageFile('x.tiff') && !isImageFile('x.txt') && !isImageFile('png'));
});

test('runs: retired settings get one message that names each set one and clusterLens.device; none set, no message', () => {
  assert.equal(retiredSettingsMessage(() => false), undefined);
  // Only the retired settings are asked about.
  const asked: string[] = [];
  retiredSettingsMessage((setting) => {
    asked.push(setting);
    return false;
  });
  assert.deepEqual(asked.sort(), ['backend', 'trainingRuntime']);
  assert.deepEqual(Object.keys(retiredSettings).sort(), ['backend', 'trainingRuntime']);

  const backend = retiredSettingsMessage((setting) => setting === 'backend');
  assert.ok(backend);
  assert.match(backend, /^clusterLens\.backend is no longer used/);
  assert.ok(!backend.includes('trainingRuntime'));
  assert.match(backend, /Remove it from your settings/);
  assert.match(backend, /clusterLens\.device/);

  const runtime = retiredSettingsMessage((setting) => setting === 'trainingRuntime');
  assert.ok(runtime);
  assert.match(runtime, /^clusterLens\.trainingRuntime is no longer used/);
  assert.ok(!runtime.includes('clusterLens.backend'));

  const both = retiredSettingsMessage(() => true);
  assert.ok(both);
  assert.match(both, /clusterLens\.backend and clusterLens\.trainingRuntime are no longer used/);
  assert.match(both, /Remove them from your settings; clusterLens\.device says where the work runs/);
  assert.match(both, /TensorFlow\.js is retired/);
  // Settings that still exist never trigger it.
  assert.equal(retiredSettingsMessage((setting) => ['device', 'imageSizePx', 'minutes'].includes(setting)), undefined);
});

test('runs: the thread setting reaches the engine only when it pins a count', () => {
  assert.deepEqual(engineEnvironment(1), { CLUSTER_LENS_THREADS: '1' });
  assert.deepEqual(engineEnvironment(4), { CLUSTER_LENS_THREADS: '4' });
  assert.deepEqual(engineEnvironment(0, 'gpu'), { CLUSTER_LENS_DEVICE: 'gpu' });
  assert.deepEqual(engineEnvironment(undefined, 'quantum'), {});
  for (const unset of [undefined, 0, -2, 1.5]) assert.deepEqual(engineEnvironment(unset), {});
});

test('runs: an image is in the run when its index holds it; any other is explained on the fly', () => {
  const overview = { imagesDir: '/data/images', paths: ['a/1.png', 'b/2.png'] };
  assert.equal(isInRun(overview, '/data/images/a/1.png'), true);
  assert.equal(isInRun(overview, '/data/images/a/../b/2.png'), true);
  assert.equal(isInRun(overview, '/data/images/a/3.png'), false);
  assert.equal(isInRun(overview, '/data/photos/a/1.png'), false);
});

test('runs: the training history of a finished run, damaged lines skipped, thinned with the last step kept', async () => {
  const runDir = tempDir('cl-history-');
  const lines = Array.from({ length: 10 }, (_, i) => JSON.stringify({ step: i + 1, epoch: 0, loss: 5 - i / 10, learningRate: 1e-3, imagesPerSecond: 50 }));
  writeFileSync(path.join(runDir, 'metrics.jsonl'), [...lines, '{"step": 11, "lo'].join('\n'));
  const history = await readTrainingHistory(runDir);
  assert.deepEqual(history.map((p) => p.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(history[0], { step: 1, loss: 5, learningRate: 1e-3, imagesPerSecond: 50 });
  assert.deepEqual((await readTrainingHistory(runDir, 4)).map((p) => p.step), [1, 4, 7, 10]);
  assert.deepEqual(await readTrainingHistory(path.join(runDir, 'missing')), []);
});

test('runs: the health readings of a finished run, each with the step before it, the step lines not mistaken for readings', async () => {
  const runDir = tempDir('cl-health-');
  const reading = (state: string, epochsObserved: number) => ({ state, advice: 'a sentence', epochsObserved, prototypesUsed: 5, prototypes: 6, usageEntropy: 1.5, stableEpochs: 0, lossReference: Math.log(6), queueActive: false });
  const lines = [
    { step: 1, epoch: 0, loss: 3 },
    { step: 2, epoch: 0, loss: 2.9 },
    { epoch: 1, elapsedMs: 10, health: reading('learning', 1) },
    { step: 3, epoch: 1, loss: 2.8 },
    { step: 4, epoch: 1, loss: 2.7 },
    { epoch: 2, elapsedMs: 20, health: reading('converged', 2) },
  ].map((line) => JSON.stringify(line));
  writeFileSync(path.join(runDir, 'metrics.jsonl'), [...lines, '{"epoch": 3, "hea'].join('\n'));
  const readings = await readHealthHistory(runDir);
  assert.deepEqual(readings.map(({ step, health }) => [step, health.state, health.epochsObserved]), [[2, 'learning', 1], [4, 'converged', 2]]);
  assert.deepEqual((await readTrainingHistory(runDir)).map((p) => p.step), [1, 2, 3, 4]);
  assert.deepEqual(await readHealthHistory(path.join(runDir, 'missing')), []);
});
