// Old checkpoints and runs open, train on and explain: a run as the TensorFlow.js-era engine wrote it (its options
// name a tfjs backend and training runtime, run.json, the checkpoint and the index name the backend, and neither
// run.json nor the checkpoint names a device) still gives neighbours, explanations and an evaluation, rebuilds its
// index, and resumes training on onnxruntime, after which its files name the device instead.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { silentContext } from '../../../src/engine/jobContext';
import { evaluateRun } from '../../../src/engine/jobs/evaluate';
import { explainImage } from '../../../src/engine/jobs/explain';
import { findNeighbours, indexRun } from '../../../src/engine/jobs/indexQueries';
import { train } from '../../../src/engine/jobs/train';
import { readIndex } from '../../../src/engine/index/indexer';
import { forgetRun } from '../../../src/engine/index/runQueries';
import { checkpointPath, loadCheckpoint } from '../../../src/engine/model/checkpoint';
import { readManifest, runPath } from '../../../src/engine/runFolder';
import { readArchive, writeArchive } from '../../../src/engine/util/tensorArchive';
import { listRuns } from '../../../src/host/runs';
import type { TrainOptions } from '../../../src/protocol/options';
import { tempDir } from '../../tempDir';

process.env.CLUSTER_LENS_THREADS ??= '1';
// 16 images of 16 px, batch 8: two steps an epoch.
const options: Partial<TrainOptions> = { imageSizePx: 16, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 4, batchSize: 8, localCrops: 1, localCropSizePx: 8, epochs: 2, minutes: 0, freezePrototypesSteps: 1, device: 'cpu', seed: 4 };
let imagesDir: string;
let runDir: string;
/** The old checkpoint's arrays, as written before the run was resumed. */
let oldArrays: Map<string, Float32Array>;

type Json = Record<string, unknown>;

/** Rewrites an archive (checkpoint, index) as it was, its header changed by `edit`. */
async function editArchiveHeader(file: string, edit: (header: Json) => void): Promise<void> {
  const { header, arrays } = await readArchive<Json>(file);
  edit(header);
  await writeArchive(file, header, arrays);
}

/** Turns a run written by this engine into one as the TensorFlow.js-era engine wrote it. */
async function makeTensorFlowEraRun(dir: string): Promise<void> {
  const eraOptions = (given: Json) => ({ ...given, backend: 'wasm', trainingRuntime: 'tfjs' });
  const manifestFile = runPath(dir, 'manifest');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Json;
  delete manifest.device;
  writeFileSync(manifestFile, JSON.stringify({ ...manifest, options: eraOptions(manifest.options as Json), backend: 'wasm' }, null, 2));
  await editArchiveHeader(checkpointPath(dir), (header) => {
    delete header.device;
    header.backend = 'wasm';
    header.options = eraOptions(header.options as Json);
  });
  await editArchiveHeader(runPath(dir, 'index'), (header) => {
    header.backend = 'wasm';
  });
}

async function checkpointArrays(file: string): Promise<Map<string, Float32Array>> {
  const { arrays } = await readArchive(file);
  return new Map([...arrays].map(([name, { values }]) => [name, Float32Array.from(values as Float32Array)]));
}

before(async () => {
  imagesDir = tempDir('cl-old-images-');
  for (const [label, draw] of [['squares', (i: number) => `<rect x="${2 + (i % 4)}" y="${2 + (i % 3)}" width="8" height="8" fill="white"/>`], ['stripes', (i: number) => `<rect x="0" y="${i % 4}" width="16" height="3" fill="#999"/><rect x="0" y="${8 + (i % 3)}" width="16" height="3" fill="#999"/>`]] as const) {
    mkdirSync(path.join(imagesDir, label));
    for (let i = 0; i < 8; i++) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="black"/>${draw(i)}</svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(imagesDir, label, `${i}.png`));
    }
  }
  runDir = path.join(tempDir('cl-old-run-'), 'run');
  const trained = await train({ imagesDir, runDir, options }, silentContext());
  assert.equal(trained.steps, 4);
  await makeTensorFlowEraRun(runDir);
  oldArrays = await checkpointArrays(checkpointPath(runDir));
});

test('old run: its files read as the TensorFlow.js-era engine wrote them, and the host lists it', async () => {
  const manifest = (await readManifest(runDir)) as unknown as Json;
  assert.equal(manifest.backend, 'wasm');
  assert.equal(manifest.device, undefined);
  assert.deepEqual([(manifest.options as Json).backend, (manifest.options as Json).trainingRuntime], ['wasm', 'tfjs']);
  const { header, model } = await loadCheckpoint(checkpointPath(runDir));
  assert.deepEqual([header.backend, header.device, header.step, header.epoch], ['wasm', undefined, 4, 2]);
  assert.equal((header.options as unknown as Json).trainingRuntime, 'tfjs');
  // The weights load whole: every conv, BatchNorm statistic and prototype, finite.
  assert.ok(model.variables.size > 20);
  for (const [name, parameter] of model.variables) {
    assert.equal(parameter.values.length, parameter.shape.reduce((a, b) => a * b, 1), name);
    assert.ok(parameter.values.every(Number.isFinite), name);
  }
  const index = await readArchive<Json>(runPath(runDir, 'index'));
  assert.equal(index.header.backend, 'wasm');
  const runs = await listRuns(path.dirname(runDir));
  assert.deepEqual(runs.map((run) => [run.name, run.hasIndex]), [['run', true]]);
});

test('old run: neighbours, Grad-CAM and evaluate work on its index and checkpoint as they are', async () => {
  forgetRun(runDir);
  const index = await readIndex(runDir);
  assert.equal(index.header.records.length, 16);
  const inside = await findNeighbours(runDir, 'squares/0.png', 3, silentContext());
  assert.equal(inside.neighbours.length, 3);
  assert.ok(inside.neighbours.every((hit, i) => hit.path !== 'squares/0.png' && (i === 0 || hit.similarity <= inside.neighbours[i - 1].similarity)));
  // An image from outside the folder is embedded on the spot by the old checkpoint: its copy comes first.
  const outside = path.join(tempDir('cl-old-outside-'), 'copy.png');
  copyFileSync(path.join(imagesDir, 'stripes', '2.png'), outside);
  const found = await findNeighbours(runDir, outside, 2, silentContext());
  assert.equal(found.neighbours[0].path, 'stripes/2.png');
  assert.ok(found.neighbours[0].similarity > 0.9999, `similarity ${found.neighbours[0].similarity}`);

  const gradcam = await explainImage({ runDir, image: 'squares/1.png', method: 'gradcam' }, silentContext());
  assertHeatmap(gradcam.heatmap, 16, 'Grad-CAM of the old run');
  assert.equal(gradcam.imageSizePx, 16);
  assert.equal(gradcam.cluster, index.assignments[index.header.records.findIndex((record) => record.path === 'squares/1.png')]);
  assert.ok(!('backend' in gradcam), 'the result names no backend');

  const evaluated = await evaluateRun(runDir, silentContext());
  assert.equal(evaluated.images, 16);
  for (const key of ['nmi', 'ari', 'acc', 'knn'] as const) assert.ok(Number.isFinite(evaluated[key]), `${key} ${evaluated[key]}`);
  assert.ok(evaluated.acc >= 0.5 && evaluated.acc <= 1 && evaluated.nmi >= 0 && evaluated.nmi <= 1);
  assert.ok(!('backend' in evaluated));
});

test('old run: its index rebuilds from the old checkpoint, the same rows, without a backend', async () => {
  const before = await readIndex(runDir);
  const indexed = await indexRun(runDir, silentContext());
  assert.equal(indexed.images, 16);
  assert.ok(!('backend' in indexed));
  const after = await readIndex(runDir);
  assert.equal(after.header.checkpointStep, 4);
  assert.equal((after.header as unknown as Json).backend, undefined, 'the rebuilt index names no backend');
  assert.deepEqual(after.header.records.map((record) => record.path), before.header.records.map((record) => record.path));
  const largest = (a: Float32Array, b: Float32Array) => a.reduce((max, v, i) => Math.max(max, Math.abs(v - b[i])), 0);
  assert.ok(largest(after.embeddings.data, before.embeddings.data) < 1e-5, 'the same embeddings from the same weights');
  assert.deepEqual([...after.assignments], [...before.assignments]);
});

test('old run: resumes training on onnxruntime; the weights move, the run and checkpoint then name the device', async () => {
  const resumed = await train({ imagesDir, runDir, resume: true, options: { epochs: 3 } }, silentContext());
  assert.equal(resumed.cancelled, false);
  assert.equal(resumed.steps, 6, 'one more epoch of two steps after the old run\'s four');
  assert.equal(resumed.epochs, 3);
  assert.ok(Number.isFinite(resumed.finalLoss));
  assert.equal(resumed.device, 'cpu');
  assert.ok(!('backend' in resumed) && !('trainingRuntime' in resumed));

  const { header, model, extra } = await loadCheckpoint(checkpointPath(runDir));
  assert.deepEqual([header.step, header.epoch, header.device], [6, 3, 'cpu']);
  assert.equal(header.backend, undefined, 'the new checkpoint names the device, not a backend');
  assert.ok(!('backend' in header.options) && !('trainingRuntime' in header.options));
  // The recipe is the old run's.
  assert.deepEqual([header.options.width, header.options.prototypes, header.options.imageSizePx, header.options.batchSize], [4, 4, 16, 8]);
  // The weights and the running statistics moved; the shapes did not change; Adam's moments came along.
  const after = await checkpointArrays(checkpointPath(runDir));
  assert.deepEqual([...after.keys()].sort(), [...oldArrays.keys()].sort());
  for (const name of ['model.stem.conv', 'model.head.fc2.weight', 'model.prototypes', 'model.stem.bn.runningMean']) {
    const moved = after.get(name)!.reduce((max, v, i) => Math.max(max, Math.abs(v - oldArrays.get(name)![i])), 0);
    assert.ok(moved > 1e-6, `${name} moved by ${moved}`);
  }
  for (const [name, parameter] of model.variables) assert.ok(parameter.values.every(Number.isFinite), name);
  assert.ok([...extra.keys()].some((name) => name.startsWith('adam.')), 'the optimiser state is saved');

  const manifest = (await readManifest(runDir)) as unknown as Json;
  assert.equal(manifest.device, 'cpu');
  assert.equal(manifest.backend, undefined);
  assert.ok(!('backend' in (manifest.options as Json)) && !('trainingRuntime' in (manifest.options as Json)));

  // The resumed run's index is built by the resume, from the new weights.
  forgetRun(runDir);
  const index = await readIndex(runDir);
  assert.equal(index.header.checkpointStep, 6);
  assert.equal(index.header.records.length, 16);
  const neighbours = await findNeighbours(runDir, 'stripes/5.png', 4, silentContext());
  assert.equal(neighbours.neighbours.length, 4);
  const gradcam = await explainImage({ runDir, image: 'stripes/5.png', method: 'gradcam' }, silentContext());
  assertHeatmap(gradcam.heatmap, 16, 'Grad-CAM after the resume');
  const evaluated = await evaluateRun(runDir, silentContext());
  assert.equal(evaluated.images, 16);
  forgetRun(runDir);
});

function assertHeatmap(heatmap: { widthPx: number; heightPx: number; values: number[] }, sizePx: number, what: string): void {
  assert.deepEqual([heatmap.widthPx, heatmap.heightPx, heatmap.values.length], [sizePx, sizePx, sizePx * sizePx], `${what}: one value a pixel`);
  assert.ok(heatmap.values.every((value) => Number.isFinite(value) && value >= 0 && value <= 1), `${what}: finite, in [0, 1]`);
  assert.ok(Math.max(...heatmap.values) > 0, `${what}: not all zero`);
}
