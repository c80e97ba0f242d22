// A run folder trusts nothing it reads (issue #26): one tiny trained run, copied per case and tampered with. Each
// case asserts the stable error code, that the message names the file (and the field), that no file under the
// canary folder (standing in for /etc) is opened and its content shows up nowhere, and that the run's files are
// unchanged by the refused job.
import assert from 'node:assert/strict';
import fs, { cpSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { readIndex } from '../../../src/engine/index/indexer';
import { readNeighbourGraph } from '../../../src/engine/index/neighbourIndex';
import { findDuplicates, findOutliers } from '../../../src/engine/index/curate';
import { silentContext } from '../../../src/engine/jobContext';
import { explainImage } from '../../../src/engine/jobs/explain';
import { findNeighbours, indexRun } from '../../../src/engine/jobs/indexQueries';
import { createHeadModel } from '../../../src/engine/frozen/headTrainer';
import { checkpointPath, loadCheckpoint, saveCheckpoint, type CheckpointHeader } from '../../../src/engine/model/checkpoint';
import { createRandom } from '../../../src/engine/util/random';
import { resolveTrainOptions } from '../../../src/engine/config';
import { readManifest, runPath } from '../../../src/engine/runFolder';
import { train } from '../../../src/engine/jobs/train';
import { readArchive, writeArchive, type ArchiveArray } from '../../../src/engine/util/tensorArchive';
import type { TrainOptions } from '../../../src/protocol/options';
import { tempDir } from '../../tempDir';

process.env.CLUSTER_LENS_THREADS ??= '1';
// 12 images of 16 px, batch 6: two steps, one epoch.
const options: Partial<TrainOptions> = { imageSizePx: 16, width: 4, blocksPerStage: [1], projectionHiddenDim: 8, projectionDim: 4, prototypes: 3, batchSize: 6, localCrops: 0, epochs: 1, minutes: 0, freezePrototypesSteps: 1, device: 'cpu', seed: 5 };

type Json = Record<string, unknown>;
const canaryText = 'CANARY-7f3c secret that must never leave its folder';
let root: string;
let imagesDir: string;
let canaryDir: string;
let baseRun: string;
let copies = 0;

/** Every path the engine opens through node:fs while the spy is on (sharp decodes bytes that node read). */
const opened: string[] = [];
function spyOnReads(): void {
  const record = (file: unknown) => {
    if (typeof file === 'string' || file instanceof URL || Buffer.isBuffer(file)) opened.push(path.resolve(String(file instanceof URL ? file.pathname : file)));
  };
  const wrap = <T extends object, K extends keyof T>(target: T, name: K) => {
    const original = target[name] as unknown as (...args: unknown[]) => unknown;
    (target as Record<K, unknown>)[name] = function (this: unknown, ...args: unknown[]) {
      record(args[0]);
      return original.apply(this, args);
    };
  };
  wrap(fs, 'createReadStream');
  wrap(fs, 'readFileSync');
  wrap(fs, 'openSync');
  wrap(fs, 'readFile');
  wrap(fs, 'open');
  wrap(fs.promises, 'readFile');
  wrap(fs.promises, 'open');
  syncBuiltinESMExports();
}

function assertCanaryUntouched(...results: unknown[]): void {
  const touched = opened.filter((file) => file === canaryDir || file.startsWith(canaryDir + path.sep));
  assert.deepEqual(touched, [], 'nothing under the canary folder is opened');
  for (const result of results) assert.ok(!JSON.stringify(result ?? null).includes('CANARY'), 'the canary\'s content shows up in no result');
}

/** A fresh copy of the trained run, its caches cold (a new folder). */
function copyRun(): string {
  const dir = path.join(root, `copy-${copies++}`);
  cpSync(baseRun, dir, { recursive: true });
  return dir;
}

async function editArchive(file: string, edit: (header: Json, arrays: Map<string, { shape: number[]; values: ArchiveArray }>) => void): Promise<void> {
  const { header, arrays } = await readArchive<Json>(file);
  edit(header, arrays);
  await writeArchive(file, header, arrays);
}

function editManifest(runDir: string, edit: (manifest: Json) => void): void {
  const file = runPath(runDir, 'manifest');
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as Json;
  edit(manifest);
  writeFileSync(file, JSON.stringify(manifest, null, 2));
}

/** The run folder's files and their bytes, to compare before and after a refused job. */
function snapshot(runDir: string): Map<string, string> {
  return new Map(fs.readdirSync(runDir).map((name) => [name, readFileSync(path.join(runDir, name)).toString('base64')]));
}

/** An engine error with `code` whose message names `file` and every one of `fields`. */
function rejectsWith(code: string, file: string, ...fields: string[]) {
  return (error: { code?: string; message: string }) => {
    assert.equal(error.code, code, error.message);
    assert.ok(error.message.includes(file), `names ${file}: ${error.message}`);
    for (const field of fields) assert.ok(error.message.includes(field), `names ${field}: ${error.message}`);
    assert.ok(!error.message.includes('CANARY'), 'the canary\'s content is not in the message');
    return true;
  };
}

before(async () => {
  root = tempDir('cl-tampered-');
  // images in root/a/images, so "../../canary.png" from it is root/canary/.. : the canary folder stands in for /etc.
  imagesDir = path.join(root, 'a', 'images');
  canaryDir = path.join(root, 'canary');
  mkdirSync(canaryDir, { recursive: true });
  writeFileSync(path.join(canaryDir, 'canary.png'), canaryText);
  writeFileSync(path.join(root, 'canary.png'), canaryText);
  for (const [label, draw] of [['squares', (i: number) => `<rect x="${2 + (i % 4)}" y="${2 + (i % 3)}" width="8" height="8" fill="white"/>`], ['stripes', (i: number) => `<rect x="0" y="${i % 4}" width="16" height="3" fill="#999"/>`]] as const) {
    mkdirSync(path.join(imagesDir, label), { recursive: true });
    for (let i = 0; i < 6; i++) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="black"/>${draw(i)}</svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(imagesDir, label, `${i}.png`));
    }
  }
  // The canary folder holds the same file names as the images folder: a tampered imagesDir would find them.
  cpSync(imagesDir, canaryDir, { recursive: true });
  for (const label of ['squares', 'stripes']) for (let i = 0; i < 6; i++) writeFileSync(path.join(canaryDir, label, `${i}.png`), canaryText);
  baseRun = path.join(root, 'run');
  await train({ imagesDir, runDir: baseRun, options }, silentContext());
  // The neighbour graph (neighbours.bin), as outliers leave it.
  await findOutliers(baseRun, 3, 5, silentContext());
  spyOnReads();
});

test('an untouched copy reads whole: run.json, the checkpoint, index.bin and neighbours.bin', async () => {
  const runDir = copyRun();
  const manifest = await readManifest(runDir);
  assert.equal(manifest.imagesDir, imagesDir);
  const { model } = await loadCheckpoint(checkpointPath(runDir));
  assert.ok(model.variables.has('prototypes'));
  const index = await readIndex(runDir);
  assert.equal(index.header.records.length, 12);
  const graph = await readNeighbourGraph(runDir, index, 3);
  assert.ok(graph && graph.k >= 3);
  const outliers = await findOutliers(runDir, 3, 5, silentContext());
  assert.equal(outliers.images, 12);
  const duplicates = await findDuplicates(runDir, 0.98, silentContext());
  assert.equal(duplicates.images, 12);
  // The spy sees what the engine reads: index.bin, and each image hashed and decoded.
  assert.ok(opened.includes(runPath(runDir, 'index')), 'the spy saw index.bin read');
  assert.ok(opened.includes(path.join(imagesDir, 'squares', '0.png')), 'the spy saw an image hashed');
  assertCanaryUntouched(outliers, duplicates);
});

test('index.bin whose imagesDir points elsewhere is refused; duplicates opens nothing there', async () => {
  const runDir = copyRun();
  await editArchive(runPath(runDir, 'index'), (header) => {
    header.imagesDir = canaryDir;
  });
  const before = snapshot(runDir);
  const indexFile = runPath(runDir, 'index');
  await assert.rejects(readIndex(runDir), rejectsWith('BAD_RUN', indexFile, '"imagesDir"', canaryDir, imagesDir));
  await assert.rejects(findDuplicates(runDir, 0.98, silentContext()), rejectsWith('BAD_RUN', indexFile));
  await assert.rejects(findOutliers(runDir, 3, 5, silentContext()), rejectsWith('BAD_RUN', indexFile));
  await assert.rejects(explainImage({ runDir, image: 'squares/1.png', method: 'gradcam' }, silentContext()), rejectsWith('BAD_RUN', indexFile));
  assertCanaryUntouched();
  assert.deepEqual(snapshot(runDir), before, 'the run folder is unchanged');
});

test('a record path leaving the images folder is refused', async () => {
  const runDir = copyRun();
  await editArchive(runPath(runDir, 'index'), (header) => {
    (header.records as Json[])[0].path = '../../canary.png';
  });
  const indexFile = runPath(runDir, 'index');
  await assert.rejects(readIndex(runDir), rejectsWith('BAD_RUN', indexFile, '"records[0].path"', '../../canary.png'));
  await assert.rejects(findDuplicates(runDir, 0.98, silentContext()), rejectsWith('BAD_RUN', indexFile));
  for (const bad of [path.join(root, 'canary.png'), '/etc/passwd']) {
    await editArchive(indexFile, (header) => {
      (header.records as Json[])[0].path = bad;
    });
    await assert.rejects(readIndex(runDir), rejectsWith('BAD_RUN', indexFile, '"records[0].path"'));
  }
  assertCanaryUntouched();
});

test('an image a request names relative to the images folder stays inside it; an absolute one is the user\'s choice', async () => {
  const runDir = copyRun();
  for (const image of ['../../canary.png', '../../canary/squares/1.png']) {
    await assert.rejects(findNeighbours(runDir, image, 3, silentContext()), rejectsWith('BAD_REQUEST', imagesDir, image));
    await assert.rejects(explainImage({ runDir, image, method: 'gradcam' }, silentContext()), rejectsWith('BAD_REQUEST', imagesDir, image));
  }
  // A link inside the images folder that leads out of it is refused too.
  fs.symlinkSync(path.join(canaryDir, 'squares', '1.png'), path.join(imagesDir, 'link.png'));
  try {
    await assert.rejects(findNeighbours(runDir, 'link.png', 3, silentContext()), rejectsWith('BAD_REQUEST', imagesDir, 'link.png'));
  } finally {
    fs.rmSync(path.join(imagesDir, 'link.png'));
  }
  assertCanaryUntouched();
  // In the index by its relative path, and any image file the user passes by its absolute path.
  const inside = await findNeighbours(runDir, 'squares/0.png', 3, silentContext());
  assert.equal(inside.neighbours.length, 3);
  const outside = path.join(tempDir('cl-tampered-user-'), 'mine.png');
  fs.copyFileSync(path.join(imagesDir, 'stripes', '2.png'), outside);
  const chosen = await findNeighbours(runDir, outside, 2, silentContext());
  assert.equal(chosen.query, outside);
  assert.equal(chosen.neighbours[0].path, 'stripes/2.png');
});

test('neighbours.bin with out-of-range neighbours, a wrong shape or non-cosines is refused by its reader', async () => {
  const runDir = copyRun();
  const index = await readIndex(runDir);
  const graphFile = runPath(runDir, 'neighbourGraph');
  const pristine = readFileSync(graphFile);
  const cases: [string, (header: Json, arrays: Map<string, { shape: number[]; values: ArchiveArray }>) => void, string][] = [
    ['an index past the rows', (_, arrays) => (arrays.get('indices')!.values[5] = 999), '"indices"'],
    ['a negative index', (_, arrays) => (arrays.get('indices')!.values[0] = -7), '"indices"'],
    ['a similarity of 5', (_, arrays) => (arrays.get('similarities')!.values[3] = 5), '"similarities"'],
    ['a NaN similarity', (_, arrays) => (arrays.get('similarities')!.values[3] = Number.NaN), '"similarities"'],
    ['more rows than the index', (_, arrays) => {
      const { shape } = arrays.get('indices')!;
      arrays.set('indices', { shape: [shape[0] + 1, shape[1]], values: new Int32Array((shape[0] + 1) * shape[1]) });
    }, '"indices"'],
    ['a k larger than the rows', (header) => (header.k = 50), '"k"'],
  ];
  for (const [name, edit, field] of cases) {
    writeFileSync(graphFile, pristine);
    await editArchive(graphFile, edit);
    await assert.rejects(readNeighbourGraph(runDir, index, 3), rejectsWith('BAD_RUN', graphFile, field), name);
  }
  // A graph of another index is stale, not an error: it is recomputed.
  writeFileSync(graphFile, pristine);
  await editArchive(graphFile, (header) => (header.indexCreatedAt = 'another index'));
  assert.equal(await readNeighbourGraph(runDir, index, 3), undefined);
});

test('index.bin whose arrays disagree with its records, or hold NaN or out-of-range assignments, is refused', async () => {
  const runDir = copyRun();
  const indexFile = runPath(runDir, 'index');
  const pristine = readFileSync(indexFile);
  const cases: [string, (header: Json, arrays: Map<string, { shape: number[]; values: ArchiveArray }>) => void, string[]][] = [
    ['more records than rows', (header) => (header.records = [...(header.records as Json[]), ...(header.records as Json[])]), ['"features"', '24 images']],
    ['a shape with more rows than data', (_, arrays) => {
      const features = arrays.get('features')!;
      features.shape = [24, features.shape[1]];
    }, ['"features"']],
    ['a row count larger than the values', (_, arrays) => {
      const features = arrays.get('features')!;
      arrays.set('features', { shape: features.shape, values: features.values.slice(0, features.values.length - 1) });
    }, ['"features"', 'needs']],
    ['NaN in features', (_, arrays) => (arrays.get('features')!.values[7] = Number.NaN), ['"features"', 'NaN']],
    ['an assignment past the prototypes', (_, arrays) => (arrays.get('assignments')!.values[2] = 3), ['"assignments"']],
    ['a negative assignment', (_, arrays) => (arrays.get('assignments')!.values[2] = -1), ['"assignments"']],
  ];
  for (const [name, edit, fields] of cases) {
    writeFileSync(indexFile, pristine);
    await editArchive(indexFile, edit);
    await assert.rejects(readIndex(runDir), rejectsWith('BAD_RUN', indexFile, ...fields), name);
  }
});

test('run.json with an image size of 2000 or -1, or a bad channel count, is refused before any image is decoded', async () => {
  const runDir = copyRun();
  const manifestFile = runPath(runDir, 'manifest');
  for (const size of [2000, -1, 16.5, '16']) {
    editManifest(runDir, (manifest) => ((manifest.options as Json).imageSizePx = size));
    await assert.rejects(readManifest(runDir), rejectsWith('BAD_RUN', manifestFile, '"options.imageSizePx"', '8 to 1024'), String(size));
    await assert.rejects(explainImage({ runDir, image: 'squares/1.png', method: 'gradcam' }, silentContext()), rejectsWith('BAD_RUN', manifestFile), String(size));
  }
  editManifest(runDir, (manifest) => {
    (manifest.options as Json).imageSizePx = 16;
    manifest.channels = 2;
  });
  await assert.rejects(readManifest(runDir), rejectsWith('BAD_RUN', manifestFile, '"channels"'));
  editManifest(runDir, (manifest) => {
    manifest.channels = 1;
    manifest.imagesDir = 'relative/images';
  });
  await assert.rejects(readManifest(runDir), rejectsWith('BAD_RUN', manifestFile, '"imagesDir"'));
  editManifest(runDir, (manifest) => {
    manifest.imagesDir = imagesDir;
    (manifest.options as Json).temperature = 'hot';
  });
  await assert.rejects(readManifest(runDir), rejectsWith('BAD_RUN', manifestFile, '"options.temperature"'));
});

test('run.json pointing at another folder: index refuses to replace the good index, naming both folders', async () => {
  const runDir = copyRun();
  editManifest(runDir, (manifest) => (manifest.imagesDir = canaryDir));
  const before = snapshot(runDir);
  const mtime = statSync(runPath(runDir, 'index')).mtimeMs;
  await assert.rejects(indexRun(runDir, silentContext()), rejectsWith('BAD_RUN', runPath(runDir, 'index'), canaryDir, imagesDir));
  assert.deepEqual(snapshot(runDir), before, 'index.bin and the rest unchanged');
  assert.equal(statSync(runPath(runDir, 'index')).mtimeMs, mtime);
  // Queries refuse the index too: its folder is not the run's.
  await assert.rejects(findDuplicates(runDir, 0.98, silentContext()), rejectsWith('BAD_RUN', runPath(runDir, 'index'), canaryDir, imagesDir));
  assertCanaryUntouched();
});

test('a checkpoint whose arrays disagree with their shapes or its spec, or hold NaN, is refused', async () => {
  const runDir = copyRun();
  const file = checkpointPath(runDir);
  const pristine = readFileSync(file);
  const cases: [string, (header: Json, arrays: Map<string, { shape: number[]; values: ArchiveArray }>) => void, string[]][] = [
    ['an array one value short', (_, arrays) => {
      const prototypes = arrays.get('model.prototypes')!;
      arrays.set('model.prototypes', { shape: prototypes.shape, values: prototypes.values.slice(1) });
    }, ['"model.prototypes"', 'needs']],
    ['a variable of the wrong shape', (_, arrays) => {
      const prototypes = arrays.get('model.prototypes')!;
      prototypes.shape = [prototypes.shape[1], prototypes.shape[0]];
    }, ['"prototypes"', 'shape']],
    ['a missing variable', (_, arrays) => arrays.delete('model.head.fc2.weight'), ['"head.fc2.weight"', 'missing']],
    ['NaN in a weight', (_, arrays) => (arrays.get('model.stem.conv')!.values[0] = Number.NaN), ['"model.stem.conv"', 'NaN']],
    ['three channels against one-channel weights', (header) => ((header.spec as Json).channels = 3), ['spec']],
    ['two channels', (header) => ((header.spec as Json).channels = 2), ['"spec.channels"']],
    ['zero prototypes', (header) => ((header.spec as Json).prototypes = 0), ['"spec.prototypes"']],
    ['a huge width', (header) => ((header.spec as Json).width = 1e10), ['"spec.width"']],
    ['an image size of 2000', (header) => ((header.options as Json).imageSizePx = 2000), ['"options.imageSizePx"']],
  ];
  for (const [name, edit, fields] of cases) {
    writeFileSync(file, pristine);
    await editArchive(file, edit);
    await assert.rejects(loadCheckpoint(file), rejectsWith('BAD_CHECKPOINT', file, ...fields), name);
  }
  writeFileSync(file, pristine);
  await loadCheckpoint(file);
});

test('a frozen backbone\'s head checkpoint: its head variables are checked against the spec, [0] blocks and the backbone record', async () => {
  const dir = tempDir('cl-tampered-head-');
  const file = checkpointPath(dir);
  const model = createHeadModel(12, { projectionHiddenDim: 8, projectionDim: 4, prototypes: 3 }, createRandom(2), { channels: 3, inputMean: [0.4, 0.4, 0.4], inputStd: [0.2, 0.2, 0.2] });
  const header: CheckpointHeader = {
    format: 'cluster-lens-checkpoint',
    spec: model.spec,
    options: resolveTrainOptions({ imageSizePx: 32 }),
    epoch: 1,
    step: 3,
    elapsedMs: 10,
    randomState: 0,
    savedAt: new Date().toISOString(),
    backbone: { path: '/models/b.onnx', sha256: 'ab', featureOutput: 'features', inputMean: [0.4, 0.4, 0.4], inputStd: [0.2, 0.2, 0.2], imageSizePx: 32 },
  };
  await saveCheckpoint(file, header, model, new Map());
  const pristine = readFileSync(file);
  assert.equal((await loadCheckpoint(file)).model.variables.size, model.variables.size);
  const cases: [string, (header: Json, arrays: Map<string, { shape: number[]; values: ArchiveArray }>) => void, string[]][] = [
    ['a missing BatchNorm statistic', (_, arrays) => arrays.delete('model.head.bn.runningVariance'), ['"head.bn.runningVariance"', 'missing']],
    ['features narrower than fc1', (header) => ((header.spec as Json).width = 10), ['"head.fc1.weight"', '[10, 8]']],
    ['blocks on a frozen head', (header) => ((header.spec as Json).blocksPerStage = [1]), ['"spec.blocksPerStage"']],
    ['a backbone image size of 100000', (header) => ((header.backbone as Json).imageSizePx = 100000), ['"backbone.imageSizePx"']],
    ['a zero std', (header) => ((header.spec as Json).inputStd = [0.2, 0, 0.2]), ['"spec.inputStd"']],
  ];
  for (const [name, edit, fields] of cases) {
    writeFileSync(file, pristine);
    await editArchive(file, edit);
    await assert.rejects(loadCheckpoint(file), rejectsWith('BAD_CHECKPOINT', file, ...fields), name);
  }
});

test('outliers and duplicates over a tampered neighbours.bin recompute the graph, say so, and give the untampered answers', async () => {
  const runDir = copyRun();
  const graphFile = runPath(runDir, 'neighbourGraph');
  const expectedOutliers = await findOutliers(runDir, 3, 12, silentContext());
  const expectedDuplicates = await findDuplicates(runDir, 0.98, silentContext());
  await editArchive(graphFile, (_, arrays) => {
    arrays.get('indices')!.values[5] = 999;
    arrays.get('similarities')!.values[0] = 5;
  });
  const logged: string[] = [];
  const context = { ...silentContext(), log: (_level: string, message: string) => logged.push(message) };
  assert.deepEqual((await findOutliers(runDir, 3, 12, context)).outliers, expectedOutliers.outliers);
  assert.ok(logged.some((line) => line.includes(graphFile)), logged.join('\n'));
  const index = await readIndex(runDir);
  assert.ok(await readNeighbourGraph(runDir, index, 3), 'the file was replaced by a sound graph');
  await editArchive(graphFile, (_, arrays) => (arrays.get('indices')!.values[5] = -99));
  assert.deepEqual((await findDuplicates(runDir, 0.98, silentContext())).groups, expectedDuplicates.groups);
});
