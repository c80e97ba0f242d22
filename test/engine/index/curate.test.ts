// Near-duplicates, outliers, exports and UMAP on a real run: the shipped Fashion-MNIST sample plus planted images.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { parquetReadObjects } from 'hyparquet';
import sharp from 'sharp';
import { silentContext } from '../../../src/engine/jobContext';
import { computeUmap, exportAssignments, findDuplicates, findOutliers, writeMapPoints } from '../../../src/engine/index/curate';
import { cachedIndex } from '../../../src/engine/index/runQueries';
import { readArchive } from '../../../src/engine/util/tensorArchive';
import { train } from '../../../src/engine/jobs/train';
import { tempDir } from '../../tempDir';

process.env.CLUSTER_LENS_THREADS ??= '1';
const sample = path.resolve(__dirname, '../../../sample/fashion-mnist');
let imagesDir: string;
let runDir: string;
/** Each planted copy and the sample image it copies. */
const planted: [string, string][] = [];

before(async () => {
  imagesDir = tempDir('cl-curate-');
  cpSync(sample, imagesDir, { recursive: true });
  const originals = ['0-tshirt-top', '1-trouser', '7-sneaker', '9-ankle-boot'].map((folder) => {
    const file = readdirFirst(path.join(imagesDir, folder));
    return `${folder}/${file}`;
  });
  mkdirSync(path.join(imagesDir, 'planted'));
  const source = (relative: string) => path.join(imagesDir, relative);
  await sharp(source(originals[0])).resize(56, 56).png().toFile(path.join(imagesDir, 'planted', 'resized.png'));
  await sharp(source(originals[1])).jpeg({ quality: 85 }).toFile(path.join(imagesDir, 'planted', 're-encoded.jpg'));
  await sharp(source(originals[2])).flop().png().toFile(path.join(imagesDir, 'planted', 'flipped.png'));
  copyFileSync(source(originals[3]), path.join(imagesDir, 'planted', 'copy.png'));
  planted.push(['planted/resized.png', originals[0]], ['planted/re-encoded.jpg', originals[1]], ['planted/flipped.png', originals[2]], ['planted/copy.png', originals[3]]);
  // A photograph among clothes on black: a full-frame outdoor scene (sky, sun, a tiled path), lit edge to edge.
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><defs><linearGradient id="g" x2="0" y2="1"><stop offset="0" stop-color="#9cf"/><stop offset="1" stop-color="#363"/></linearGradient><pattern id="p" width="4" height="4" patternUnits="userSpaceOnUse"><rect width="2" height="2" fill="#ddd"/><rect x="2" y="2" width="2" height="2" fill="#ddd"/></pattern></defs><rect width="28" height="28" fill="url(#g)"/><circle cx="20" cy="8" r="4" fill="#ffd"/><rect y="18" width="28" height="10" fill="url(#p)"/></svg>`;
  await sharp(Buffer.from(svg)).png().toFile(path.join(imagesDir, 'planted', 'odd-photo.png'));
  runDir = path.join(tempDir('cl-curate-run-'), 'run');
  const options = { imageSizePx: 28, width: 16, epochs: 8, minutes: 0, batchSize: 100, seed: 1 };
  await train({ imagesDir, runDir, options }, silentContext());
});

function readdirFirst(folder: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('node:fs').readdirSync(folder) as string[]).sort()[0];
}

test('duplicates: each planted copy (resized, re-encoded, flipped, byte copy) groups with its original; no other group', async () => {
  const result = await findDuplicates(runDir, undefined, silentContext());
  assert.equal(result.threshold, 0.98);
  const described = JSON.stringify(result.groups.map((group) => [group.paths, group.minSimilarity.toFixed(4)]));
  for (const [copy, original] of planted) {
    assert.ok(
      result.groups.some((group) => group.paths.includes(copy) && group.paths.includes(original)),
      `${copy} groups with ${original}: ${described}`,
    );
  }
  const exact = result.groups.find((group) => group.paths.includes('planted/copy.png'))!;
  assert.equal(exact.exact, exact.paths.length === 2, described);
  // Groups of the sample's own images are look-alikes, not copies. Measured: one pair of plain white dresses
  // (3-dress/00366 and 00466, 3.6% mean pixel difference) passes both checks; more than that is a regression.
  const plantedPaths = new Set(planted.flat());
  const sampleOnly = result.groups.filter((group) => !group.paths.some((p) => plantedPaths.has(p)));
  assert.ok(sampleOnly.length <= 1 && sampleOnly.every((group) => group.paths.length === 2), described);
});

test('outliers: the planted photograph ranks first', async () => {
  const all = await findOutliers(runDir, 20, 2000, silentContext());
  const rank = all.outliers.findIndex((outlier) => outlier.path === 'planted/odd-photo.png');
  const result = { ...all, outliers: all.outliers.slice(0, 5) };
  assert.equal(rank, 0, `rank ${rank}: ${JSON.stringify(all.outliers[rank])}`);
  assert.equal(result.k, 20);
  assert.equal(result.outliers[0].path, 'planted/odd-photo.png', JSON.stringify(result.outliers));
  assert.ok(result.outliers[0].score > result.outliers[1].score);
});

test('export: the CSV reads back to the index assignments, probabilities and paths', async () => {
  const out = path.join(tempDir('cl-export-'), 'assignments.csv');
  const result = await exportAssignments(runDir, 'csv', out, silentContext());
  const index = await cachedIndex(runDir);
  const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
  assert.equal(lines[0], 'path,cluster,probability,label,map_x,map_y,outlier_score');
  assert.equal(lines.length - 1, index.header.records.length);
  assert.equal(result.rows, index.header.records.length);
  lines.slice(1).forEach((line, row) => {
    const [file, cluster, probability, label, x, y, outlier] = line.split(',');
    assert.equal(file, index.header.records[row].path);
    assert.equal(Number(cluster), index.assignments[row]);
    assert.ok(Math.abs(Number(probability) - index.probabilities.data[row * index.probabilities.dims + index.assignments[row]]) < 1e-6);
    assert.equal(label, index.header.labelNames[index.header.records[row].label]);
    for (const value of [x, y, outlier]) assert.ok(Number.isFinite(Number(value)), line);
  });
  const json = path.join(tempDir('cl-export-'), 'assignments.json');
  await exportAssignments(runDir, 'json', json, silentContext());
  const parsed = JSON.parse(readFileSync(json, 'utf8')) as { rows: { path: string; cluster: number }[] };
  assert.deepEqual(parsed.rows.map((row) => row.cluster), Array.from(index.assignments));
});

test('export: the Parquet file reads back (hyparquet) to the same typed columns as the CSV', async () => {
  const out = path.join(tempDir('cl-export-'), 'assignments.parquet');
  const result = await exportAssignments(runDir, 'parquet', out, silentContext());
  const index = await cachedIndex(runDir);
  assert.equal(result.format, 'parquet');
  assert.equal(readFileSync(out).subarray(0, 4).toString('latin1'), 'PAR1');
  const bytes = readFileSync(out);
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const rows = (await parquetReadObjects({ file })) as Record<string, unknown>[];
  assert.equal(rows.length, index.header.records.length);
  assert.deepEqual(Object.keys(rows[0]), ['path', 'cluster', 'probability', 'label', 'map_x', 'map_y', 'outlier_score']);
  rows.forEach((row, i) => {
    assert.equal(row.path, index.header.records[i].path);
    assert.equal(row.cluster, index.assignments[i]);
    assert.equal(row.label, index.header.labelNames[index.header.records[i].label]);
    assert.ok(Math.abs((row.probability as number) - index.probabilities.data[i * index.probabilities.dims + index.assignments[i]]) < 1e-6);
    for (const column of ['map_x', 'map_y', 'outlier_score']) assert.ok(Number.isFinite(row[column] as number), JSON.stringify(row));
  });
  await assert.rejects(exportAssignments(runDir, 'xlsx' as never, out, silentContext()), /--format must be csv, json, parquet/);
});

test('UMAP is seeded: the same run and seed give the same layout; the map file then carries it', async () => {
  const first = await computeUmap(runDir, { seed: 7, force: true }, silentContext());
  const a = (await readArchive(first.path)).arrays.get('umap')!.values.slice();
  await computeUmap(runDir, { seed: 7, force: true }, silentContext());
  const b = (await readArchive(first.path)).arrays.get('umap')!.values;
  assert.equal(a.length, 2 * first.images);
  assert.deepEqual(Array.from(b), Array.from(a));
  const other = await computeUmap(runDir, { seed: 8, force: true }, silentContext());
  assert.notDeepEqual(Array.from((await readArchive(other.path)).arrays.get('umap')!.values), Array.from(a));
  const points = await writeMapPoints(runDir);
  assert.deepEqual(points.layouts, ['pca', 'umap']);
});
