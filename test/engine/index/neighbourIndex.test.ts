// The saved HNSW index of large runs (threshold lowered to a few thousand rows here): written by indexing, used by
// neighbour queries, ignored (exact scan, and the result says so) when stale or damaged, released by forgetRun.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import type { LogLevel } from '../../../src/protocol/engine';
import type { ImageSet } from '../../../src/engine/data/decode';
import { createMatrix } from '../../../src/engine/analysis/matrix';
import { EngineError } from '../../../src/engine/errors';
import { writeIndex, type EmbedOutput } from '../../../src/engine/index/indexer';
import { writeNeighbourIndex } from '../../../src/engine/index/neighbourIndex';
import { cachedIndex, forgetRun } from '../../../src/engine/index/runQueries';
import { findNeighbours } from '../../../src/engine/jobs/indexQueries';
import { silentContext, type JobContext } from '../../../src/engine/jobContext';
import { runPath, writeManifest, type RunManifest } from '../../../src/engine/runFolder';
import { requirements, skipUnless } from '../../requirements';
import { tempDir } from '../../tempDir';

const rows = 3000;
const dims = 32;
const minRows = 1000;
let runDir: string;
let images: ImageSet;
let embedded: EmbedOutput;

/** Seeded unit rows in 60 tight, well-separated clusters of 50. */
function clusteredRows(): Float32Array {
  let state = 11;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 4294967296);
  const gaussian = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const centres = Array.from({ length: 60 }, () => Float32Array.from({ length: dims }, gaussian));
  const data = new Float32Array(rows * dims);
  for (let row = 0; row < rows; row++) {
    const centre = centres[row % centres.length];
    let norm = 0;
    for (let d = 0; d < dims; d++) norm += (data[row * dims + d] = centre[d] + 0.15 * gaussian()) ** 2;
    for (let d = 0; d < dims; d++) data[row * dims + d] /= Math.sqrt(norm);
  }
  return data;
}

function loggingContext(lines: string[], signal?: AbortSignal): JobContext {
  return { ...silentContext(signal), log: (level: LogLevel, message: string) => lines.push(`${level}: ${message}`) };
}

async function index(options: { minRows?: number; context?: JobContext } = {}): Promise<void> {
  await writeIndex(embedded, images, { runDir, checkpointStep: 7, neighbourIndexMinRows: options.minRows ?? minRows }, options.context ?? silentContext());
  forgetRun(runDir);
}

const usearchSkip = skipUnless(requirements.usearch);

before(async () => {
  runDir = tempDir('cl-ann-run-');
  const records = Array.from({ length: rows }, (_, i) => ({ path: `images/${String(i).padStart(5, '0')}.png`, label: -1 }));
  images = { root: tempDir('cl-ann-images-'), records, labelNames: [], imageSizePx: 8, channels: 1, pixels: new Uint8Array(0), skipped: [] };
  const scores = createMatrix(rows, 4);
  for (let row = 0; row < rows; row++) scores.data[row * 4 + (row % 4)] = 1;
  const embeddings = createMatrix(rows, 3);
  for (let i = 0; i < embeddings.data.length; i++) embeddings.data[i] = Math.sin(i);
  embedded = { features: { data: clusteredRows(), rows, dims }, embeddings, scores };
  const manifest = { format: 'cluster-lens-run', imagesDir: images.root, options: {}, channels: 1, labelNames: [], device: 'cpu', createdAt: '', images: rows, skipped: [] };
  await writeManifest(runDir, manifest as unknown as RunManifest, records);
});

const queryRows = [0, 1, 777, 1500, 2999];

async function neighbours(row: number, options: { exact?: boolean; log?: string[] } = {}) {
  return findNeighbours(runDir, images.records[row].path, 10, loggingContext(options.log ?? []), { exact: options.exact });
}

test('a run over the threshold gets a saved HNSW index; queries use it, match the exact scan and leave out the query image', { skip: usearchSkip }, async () => {
  await index();
  assert.ok(existsSync(runPath(runDir, 'neighbourIndex')) && existsSync(runPath(runDir, 'neighbourIndexStamp')));
  let shared = 0;
  for (const row of queryRows) {
    const approximate = await neighbours(row);
    const exact = await neighbours(row, { exact: true });
    assert.equal(approximate.search, 'approximate');
    assert.equal(exact.search, 'exact');
    assert.equal(approximate.neighbours.length, 10);
    assert.ok(!approximate.neighbours.some((hit) => hit.imageIndex === row), `row ${row} is not its own neighbour`);
    assert.ok(approximate.neighbours.every((hit, j) => j === 0 || hit.similarity <= approximate.neighbours[j - 1].similarity), 'best first');
    // Same cluster (row mod 60) as the query: the data is well separated.
    assert.ok(approximate.neighbours.every((hit) => hit.imageIndex % 60 === row % 60), JSON.stringify(approximate.neighbours));
    const truth = new Set(exact.neighbours.map((hit) => hit.imageIndex));
    shared += approximate.neighbours.filter((hit) => truth.has(hit.imageIndex)).length;
    assert.equal(approximate.neighbours[0].imageIndex, exact.neighbours[0].imageIndex);
    assert.ok(Math.abs(approximate.neighbours[0].similarity - exact.neighbours[0].similarity) < 1e-5, 'similarities are exact cosines');
  }
  assert.ok(shared / (10 * queryRows.length) >= 0.9, `recall@10 ${shared / (10 * queryRows.length)}`);
});

test('forgetRun releases the loaded HNSW index: with its files gone, the next query scans', { skip: usearchSkip }, async () => {
  await index();
  assert.equal((await neighbours(5)).search, 'approximate');
  rmSync(runPath(runDir, 'neighbourIndex'));
  assert.equal((await neighbours(5)).search, 'approximate', 'still held in memory');
  forgetRun(runDir);
  const log: string[] = [];
  assert.equal((await neighbours(5, { log })).search, 'exact');
  assert.ok(log.some((line) => line.includes('exact scan') && line.includes('neighbours.usearch is missing')), log.join('\n'));
});

test('a stale HNSW index (stamped for another index.bin) is ignored: exact scan, logged', { skip: usearchSkip }, async () => {
  await index();
  const stampFile = runPath(runDir, 'neighbourIndexStamp');
  const stamp = JSON.parse(readFileSync(stampFile, 'utf8')) as { indexCreatedAt: string };
  writeFileSync(stampFile, JSON.stringify({ ...stamp, indexCreatedAt: '2020-01-01T00:00:00.000Z' }));
  const log: string[] = [];
  const result = await neighbours(3, { log });
  assert.equal(result.search, 'exact');
  assert.ok(!result.neighbours.some((hit) => hit.imageIndex === 3));
  assert.ok(log.some((line) => line.includes('stale')), log.join('\n'));
});

test('a damaged HNSW index is never handed to usearch: exact scan, logged', { skip: usearchSkip }, async () => {
  await index();
  const file = runPath(runDir, 'neighbourIndex');
  const bytes = readFileSync(file);
  bytes[bytes.length >> 1] ^= 0xff;
  writeFileSync(file, bytes);
  const log: string[] = [];
  assert.equal((await neighbours(3, { log })).search, 'exact');
  assert.ok(log.some((line) => line.includes('damaged')), log.join('\n'));
  // Junk (usearch aborts the process on some junk) and an unreadable stamp.
  writeFileSync(file, 'not an index at all'.repeat(20));
  forgetRun(runDir);
  assert.equal((await neighbours(3)).search, 'exact');
  writeFileSync(runPath(runDir, 'neighbourIndexStamp'), '{ half');
  forgetRun(runDir);
  const unreadable: string[] = [];
  assert.equal((await neighbours(3, { log: unreadable })).search, 'exact');
  assert.ok(unreadable.some((line) => line.includes('cannot be read')), unreadable.join('\n'));
});

test('re-indexing under the threshold removes the saved HNSW index; the answer says exact', { skip: usearchSkip }, async () => {
  await index();
  await index({ minRows: rows + 1 });
  assert.ok(!existsSync(runPath(runDir, 'neighbourIndex')) && !existsSync(runPath(runDir, 'neighbourIndexStamp')));
  assert.equal((await neighbours(0)).search, 'exact');
});

test('an HNSW index saved after the run was loaded (an index job finishing) is picked up by the next query', { skip: usearchSkip }, async () => {
  await index({ minRows: rows + 1 });
  assert.equal((await neighbours(0)).search, 'exact');
  await writeNeighbourIndex(runDir, await cachedIndex(runDir), silentContext(), { minRows: 0 });
  assert.equal((await neighbours(0)).search, 'approximate');
});

test('cancelling while the HNSW index builds: CANCELLED, index.bin kept, no HNSW file or temporary left', { skip: usearchSkip }, async () => {
  await index({ minRows: rows + 1 });
  const controller = new AbortController();
  const context: JobContext = {
    ...silentContext(controller.signal),
    progress: (update) => {
      if (update.message?.startsWith('Building the neighbour index')) controller.abort();
    },
  };
  await assert.rejects(index({ context }), (error: unknown) => error instanceof EngineError && error.code === 'CANCELLED');
  assert.ok(existsSync(runPath(runDir, 'index')));
  assert.deepEqual(readdirSync(runDir).filter((name) => name.startsWith('neighbours.usearch')), []);
  forgetRun(runDir);
  assert.equal((await neighbours(0)).search, 'exact');
});

test('the CLI prints which search answered', async () => {
  const { formatResult } = await import('../../../src/cli/format');
  const result = { kind: 'neighbours' as const, device: 'cpu' as const, query: '/q.png', cluster: 2, search: 'approximate' as const, neighbours: [] };
  assert.match(formatResult(result), /approximate/);
  assert.match(formatResult({ ...result, search: 'exact' }), /exact scan/);
});
