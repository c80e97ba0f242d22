// End to end: the built CLI trains, indexes, queries and evaluates on the sample set shipped in the repo.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main';
import { tempDir } from '../tempDir';

const run = promisify(execFile);
const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'dist', 'cli.js');
const sample = path.join(root, 'sample', 'fashion-mnist');

async function cluster(args: string[]): Promise<{ json: Record<string, unknown>; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args, '--json'], { maxBuffer: 1 << 26 });
    return { json: JSON.parse(stdout.trim().split('\n').at(-1)!), stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number };
    return { json: JSON.parse(failed.stdout.trim().split('\n').at(-1) || '{}'), stderr: failed.stderr, code: failed.code };
  }
}

test('cli: train, index, neighbours and evaluate on the sample set', async () => {
  assert.ok(existsSync(cli), 'run "npm run build" first');
  const scratch = tempDir('cl-cli-');
  // The sample with one planted copy: 8-bag's first image overwritten by the bytes of its second.
  const images = path.join(scratch, 'images');
  cpSync(sample, images, { recursive: true });
  const [original, planted] = readdirSync(path.join(images, '8-bag')).sort().slice(0, 2).map((file) => `8-bag/${file}`);
  copyFileSync(path.join(images, original), path.join(images, planted));
  const runDir = path.join(scratch, 'run');
  const trained = await cluster(['train', images, '--out', runDir, '--epochs', '2', '--image-size', '28', '--width', '8', '--batch-size', '100', '--seed', '1']);
  assert.equal(trained.code, 0, trained.stderr);
  assert.equal(trained.json.kind, 'train');
  assert.equal(trained.json.images, 1000);
  assert.equal(trained.json.epochs, 2);
  assert.equal(trained.json.steps, 20);
  // The result names the device it trained on; the TensorFlow.js era's backend and runtime are gone.
  assert.ok(['cpu', 'webgpu', 'cuda'].includes(trained.json.device as string), `device ${trained.json.device}`);
  assert.ok(!('backend' in trained.json) && !('trainingRuntime' in trained.json), JSON.stringify(trained.json));
  const manifest = JSON.parse(readFileSync(path.join(runDir, 'run.json'), 'utf8'));
  assert.ok(!('backend' in manifest) && !('backend' in manifest.options) && !('trainingRuntime' in manifest.options), JSON.stringify(manifest));
  assert.ok(Number.isFinite(trained.json.finalLoss as number));
  for (const file of ['run.json', 'images.json', 'checkpoint.ckpt', 'metrics.jsonl', 'index.bin']) assert.ok(existsSync(path.join(runDir, file)), `${file} written`);
  const metrics = readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(metrics.filter((row) => typeof row.step === 'number' && typeof row.loss === 'number').length, 20);
  // One health reading per epoch; --epochs is a forced budget, so the run says it stopped for that.
  assert.deepEqual(metrics.filter((row) => row.health).map((row) => row.epoch), [1, 2]);
  assert.equal(trained.json.stopReason, 'epochs');
  assert.match(trained.stderr, /Epoch 2: (still learning|converged|collapsing|diverged); \d+\/30 prototypes used/);

  const indexed = await cluster(['index', runDir]);
  assert.equal(indexed.code, 0, indexed.stderr);
  assert.equal(indexed.json.images, 1000);
  const clusters = indexed.json.clusters as { size: number }[];
  assert.equal(clusters.reduce((sum, c) => sum + c.size, 0), 1000);

  const image = path.join(images, '7-sneaker', readdirFirst(path.join(images, '7-sneaker')));
  const neighbours = await cluster(['neighbours', runDir, image, '--k', '5']);
  assert.equal(neighbours.code, 0, neighbours.stderr);
  const hits = neighbours.json.neighbours as { path: string; similarity: number }[];
  assert.equal(hits.length, 5);
  assert.ok(hits.every((hit, i) => i === 0 || hit.similarity <= hits[i - 1].similarity), 'sorted by similarity');
  assert.ok(!hits.some((hit) => image.endsWith(hit.path)), 'the query itself is excluded');
  // 1,000 images: under the HNSW threshold, so no index file and an exact answer that says so; --exact agrees.
  assert.equal(neighbours.json.search, 'exact');
  assert.ok(!existsSync(path.join(runDir, 'neighbours.usearch')));
  const forced = await cluster(['neighbours', runDir, image, '--k', '5', '--exact']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(forced.json.search, 'exact');
  assert.deepEqual((forced.json.neighbours as { path: string }[]).map((hit) => hit.path), hits.map((hit) => hit.path));

  const onnxPath = path.join(path.dirname(runDir), 'model.onnx');
  const exported = await cluster(['export-onnx', runDir, '--out', onnxPath]);
  assert.equal(exported.code, 0, exported.stderr);
  assert.equal(exported.json.outPath, onnxPath);
  assert.equal(readFileSync(onnxPath).length, exported.json.bytes);
  const noOut = await cluster(['export-onnx', runDir]);
  assert.equal(noOut.code, 2);
  assert.match(noOut.stderr, /--out/);

  // Curation and exports through the engine process: outliers and duplicates share the kept neighbour graph.
  const outliers = await cluster(['outliers', runDir, '--k', '5', '--limit', '3']);
  assert.equal(outliers.code, 0, outliers.stderr);
  assert.equal((outliers.json.outliers as unknown[]).length, 3);
  assert.ok(existsSync(path.join(runDir, 'neighbours.bin')));
  const duplicates = await cluster(['duplicates', runDir, '--threshold', '0.999']);
  assert.equal(duplicates.code, 0, duplicates.stderr);
  assert.equal(duplicates.json.threshold, 0.999);
  // The planted copy is found, and said to be a byte-for-byte copy.
  const groups = duplicates.json.groups as { paths: string[]; exact: boolean; minSimilarity: number }[];
  const plantedGroup = groups.find((group) => group.paths.includes(planted));
  assert.ok(plantedGroup, `the planted copy ${planted} is in a group: ${JSON.stringify(groups)}`);
  assert.deepEqual([...plantedGroup.paths].sort(), [original, planted]);
  assert.equal(plantedGroup.exact, true);
  assert.ok(plantedGroup.minSimilarity > 0.9999, `similarity ${plantedGroup.minSimilarity}`);
  const badThreshold = await cluster(['duplicates', runDir, '--threshold', '2']);
  assert.equal(badThreshold.code, 1);
  assert.match(badThreshold.stderr, /BAD_REQUEST.*threshold/);
  const csv = path.join(path.dirname(runDir), 'assignments.csv');
  const exportedCsv = await cluster(['export', runDir, '--format', 'csv', '--out', csv]);
  assert.equal(exportedCsv.code, 0, exportedCsv.stderr);
  assert.equal(readFileSync(csv, 'utf8').trim().split('\n').length, 1001);
  const parquet = path.join(path.dirname(runDir), 'assignments.parquet');
  const exportedParquet = await cluster(['export', runDir, '--format', 'parquet', '--out', parquet]);
  assert.equal(exportedParquet.code, 0, exportedParquet.stderr);
  assert.equal(exportedParquet.json.rows, 1000);
  assert.equal(readFileSync(parquet).subarray(-4).toString('latin1'), 'PAR1');
  const badFormat = await cluster(['export', runDir, '--format', 'xlsx', '--out', csv]);
  assert.equal(badFormat.code, 2);
  assert.match(badFormat.stderr, /csv, json or parquet/);

  const evaluated = await cluster(['evaluate', runDir, '--baseline']);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  for (const key of ['images', 'skipped', 'nmi', 'ari', 'acc', 'projection_nmi', 'proto_nmi', 'knn']) assert.ok(key in evaluated.json, `evaluate prints ${key}`);
  assert.ok(!('backend' in evaluated.json), 'evaluate no longer names a TensorFlow.js backend');
  assert.equal(evaluated.json.images, 1000);
  // Even two short epochs must beat chance clearly: random NMI is ~0, random kNN 0.1.
  assert.ok((evaluated.json.nmi as number) > 0.2, `nmi ${evaluated.json.nmi}`);
  assert.ok((evaluated.json.projection_nmi as number) > 0.2, `projection nmi ${evaluated.json.projection_nmi}`);
  assert.ok((evaluated.json.knn as number) > 0.4, `knn ${evaluated.json.knn}`);
  // The raw-pixel baseline on the same images (scikit-learn gives NMI 0.49–0.53 plain, 0.61–0.62 normalised).
  const pixels = evaluated.json.pixels as { imageSizePx: number; plain: { nmi: number; knn: number }; normalised: { nmi: number } };
  assert.equal(pixels.imageSizePx, 28);
  assert.ok(pixels.plain.nmi > 0.45 && pixels.plain.nmi < 0.58, `pixel nmi ${pixels.plain.nmi}`);
  assert.ok(pixels.normalised.nmi > 0.55 && pixels.normalised.nmi < 0.66, `normalised pixel nmi ${pixels.normalised.nmi}`);
  assert.ok(pixels.plain.knn > 0.6, `pixel knn ${pixels.plain.knn}`);
});

test('cli: clear errors for a missing folder, a missing run and a bad setting', async () => {
  const missing = await cluster(['train', '/nonexistent/images', '--out', path.join(os.tmpdir(), 'cl-none')]);
  assert.equal(missing.code, 1);
  assert.equal((missing.json.error as { code: string }).code, 'NOT_FOUND');
  assert.match(missing.stderr, /\/nonexistent\/images/);

  const noRun = await cluster(['evaluate', '/nonexistent/run']);
  assert.equal(noRun.code, 1);
  assert.match((noRun.json.error as { message: string }).message, /\/nonexistent\/run/);

  const badSetting = await cluster(['train', sample, '--out', path.join(os.tmpdir(), 'cl-bad'), '--prototypes', '0']);
  assert.equal((badSetting.json.error as { code: string }).code, 'BAD_CONFIG');
  assert.match(badSetting.stderr, /prototypes/);
});

test('cli: --backend and --runtime are retired: exit 2 with a message that names --device, before any work', async () => {
  const out = path.join(tempDir('cl-cli-retired-'), 'run');
  const cases: { argv: string[]; flag: string }[] = [
    { argv: ['train', sample, '--out', out, '--backend', 'wasm'], flag: 'backend' },
    { argv: ['train', sample, '--out', out, '--runtime', 'tfjs'], flag: 'runtime' },
    { argv: ['index', out, '--backend', 'tensorflow'], flag: 'backend' },
    { argv: ['bench', '--runtime', 'onnxruntime'], flag: 'runtime' },
  ];
  for (const { argv, flag } of cases) {
    const { code, stderr } = await captureStderr(() => main(argv));
    assert.equal(code, 2, `${argv.join(' ')}: ${stderr}`);
    assert.match(stderr, new RegExp(`--${flag} is no longer an option`));
    assert.match(stderr, /--device auto\|gpu\|cpu/);
    assert.match(stderr, /TensorFlow\.js is retired/);
  }
  // Nothing was trained.
  assert.ok(!existsSync(out));
  // The flags are still refused when a supported --device comes with them.
  const withDevice = await captureStderr(() => main(['train', sample, '--out', out, '--device', 'cpu', '--backend', 'wasm']));
  assert.equal(withDevice.code, 2);
  assert.match(withDevice.stderr, /--device/);
});

test('cli (built): --backend wasm and --runtime tfjs exit 2 naming --device', async (t) => {
  if (!existsSync(cli)) return t.skip('run "npm run build" first');
  for (const [flag, value] of [['backend', 'wasm'], ['runtime', 'tfjs']]) {
    const result = await cluster(['train', sample, `--${flag}`, value]);
    assert.equal(result.code, 2, result.stderr);
    // The retired flag's own message (not only the usage text, which also names --device).
    assert.match(result.stderr, new RegExp(`--${flag} is no longer an option.*--device auto\\|gpu\\|cpu`));
  }
});

/** Runs `work`, keeping what it writes to stderr (and not echoing it). */
async function captureStderr(work: () => Promise<number>): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await work(), stderr };
  } finally {
    process.stderr.write = write;
  }
}

function readdirFirst(dir: string): string {
  return readdirSync(dir).sort()[0];
}
