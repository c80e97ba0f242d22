// Scale figures for folders of 100,000 images and more (issue 14). Three parts, each printing its figures:
//
//   fashion70k  train (--minutes, default 2) on Fashion-MNIST's 70,000 images as a folder tree, then index + PCA,
//               then UMAP; time and peak resident memory of each step (GNU time's "Maximum resident set size"
//               of the whole command, the engine process included).
//   queries     1,000,000 × 128 synthetic L2-normalised rows: one neighbour query (k = 10) by the JS scan, by
//               usearch's exact SIMD scan and by the product's HNSW path (i8; built, saved and loaded as the
//               product does); median ms over 50 queries, build/save time, file size, load time and recall@10
//               against the exact scan.
//   map         a 1,000,000-point map-points.bin opened in headless Chromium by the real cluster-map bundle:
//               load time (fetch, decode, upload, first frame) and frame times while zooming and panning, timed
//               by the page's own clock (performance.now in requestAnimationFrame).
//
// Run (after `npm run build`): node --import tsx scripts/bench/scale.ts [fashion70k|queries|map ...]
//   [--data /tmp/fm70k] [--minutes 2] [--rows 1000000]
// The 70k folder is written by: node dist/cli.js fashion-mnist --out <dir>   (both splits: 70,000 PNGs)

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadUsearch, exactNearest } from '../../src/engine/index/ann';
import { neighbourIndexOptions, openNeighbourIndex, searchNeighbours, writeNeighbourIndex } from '../../src/engine/index/neighbourIndex';
import { silentContext } from '../../src/engine/jobContext';
import { runFiles } from '../../src/engine/runFolder';
import { encodeMapPoints } from '../../src/engine/index/mapPoints';
import { topKCosine } from '../../src/engine/index/neighbours';
import { closeBrowser, openWebview } from '../../test/webview/harness';

const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'dist', 'cli.js');
const { values: flags, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: { data: { type: 'string' }, minutes: { type: 'string' }, rows: { type: 'string' }, keep: { type: 'boolean' }, run: { type: 'string' } },
});
const parts = positionals.length ? positionals : ['queries', 'map', 'fashion70k'];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
}

function percentile(values: number[], share: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))];
}

/** Seeded unit rows around a few hundred centres, like embeddings of a large folder (not uniform noise). */
function syntheticRows(rows: number, dims: number, seed = 1): Float32Array {
  let state = seed;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 4294967296);
  const gaussian = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const centres = Array.from({ length: 300 }, () => Float32Array.from({ length: dims }, gaussian));
  const data = new Float32Array(rows * dims);
  for (let row = 0; row < rows; row++) {
    const centre = centres[Math.floor(random() * centres.length)];
    let norm = 0;
    for (let d = 0; d < dims; d++) {
      const value = centre[d] + 0.6 * gaussian();
      data[row * dims + d] = value;
      norm += value * value;
    }
    const scale = 1 / Math.sqrt(norm);
    for (let d = 0; d < dims; d++) data[row * dims + d] *= scale;
  }
  return data;
}

/** Runs the CLI under GNU time: its JSON result, wall seconds and the peak resident MiB of the command's processes. */
function timedCli(args: string[]): { result: Record<string, unknown>; seconds: number; peakMiB: number } {
  const started = performance.now();
  const run = spawnSync('/usr/bin/time', ['-f', 'peak-kb %M', process.execPath, cli, ...args, '--json'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const seconds = (performance.now() - started) / 1000;
  const peak = /peak-kb (\d+)/.exec(run.stderr);
  const lines = run.stdout.trim().split('\n');
  const result = JSON.parse(lines[lines.length - 1] || '{}') as Record<string, unknown>;
  if (run.status !== 0) throw new Error(`cluster-lens ${args.join(' ')} failed: ${run.stderr.slice(-2000)}`);
  return { result, seconds, peakMiB: peak ? Number(peak[1]) / 1024 : NaN };
}

function fashion70k(): void {
  const data = flags.data ?? '/tmp/fm70k';
  if (!existsSync(data)) throw new Error(`${data} is missing: node dist/cli.js fashion-mnist --out ${data}`);
  // --run: a run trained earlier on the same folder (skips training and indexing).
  const runDir = flags.run ?? path.join(mkdtempSync(path.join(os.tmpdir(), 'cl-scale-')), 'run');
  const minutes = flags.minutes ?? '2';
  console.log(`fashion70k: ${data}, run ${runDir}`);
  if (!flags.run) {
    const trained = timedCli(['train', data, '--out', runDir, '--minutes', minutes]);
    console.log(`  train --minutes ${minutes} (+ index): ${trained.seconds.toFixed(0)} s, ${trained.result.images} images, ${trained.result.steps} steps, ${Number(trained.result.imagesPerSecond).toFixed(0)} img/s; peak RSS ${trained.peakMiB.toFixed(0)} MiB`);
    const indexed = timedCli(['index', runDir]);
    console.log(`  index + PCA: ${(Number(indexed.result.durationMs) / 1000).toFixed(1)} s in the engine (${indexed.seconds.toFixed(1)} s with decoding and start-up); peak RSS ${indexed.peakMiB.toFixed(0)} MiB`);
  }
  const umap = timedCli(['umap', runDir, '--seed', '0']);
  console.log(`  UMAP (20-NN graph, HNSW above 20,000 images; 200 epochs, umap-learn's rule above 10,000): ${(Number(umap.result.durationMs) / 1000).toFixed(1)} s; peak RSS ${umap.peakMiB.toFixed(0)} MiB`);
  const again = timedCli(['umap', runDir, '--seed', '0']);
  console.log(`  UMAP again (neighbour graph kept in the run folder): ${(Number(again.result.durationMs) / 1000).toFixed(1)} s`);
  const outliers = timedCli(['outliers', runDir, '--limit', '5']);
  console.log(`  outliers (graph kept): ${(Number(outliers.result.durationMs) / 1000).toFixed(1)} s`);
  const duplicates = timedCli(['duplicates', runDir]);
  console.log(`  duplicates (hash every file, confirm candidates): ${(Number(duplicates.result.durationMs) / 1000).toFixed(1)} s, ${(duplicates.result.groups as unknown[]).length} groups`);
  if (!flags.keep && !flags.run) rmSync(path.dirname(runDir), { recursive: true, force: true });
}

async function queries(): Promise<void> {
  const rows = Number(flags.rows ?? 1_000_000);
  const dims = 128;
  console.log(`queries: ${rows.toLocaleString('en')} × ${dims} synthetic rows, k = 10, 50 queries each`);
  const data = syntheticRows(rows, dims);
  const features = { data, rows, dims };
  const picks = Array.from({ length: 50 }, (_, i) => (i * 7919 * 13) % rows);
  const time = (search: (query: Float32Array, exclude: number) => unknown) =>
    picks.map((row) => {
      const query = data.subarray(row * dims, (row + 1) * dims);
      const started = performance.now();
      search(query, row);
      return performance.now() - started;
    });
  const js = time((query, row) => topKCosine(features, query, 10, row));
  console.log(`  JS scan: median ${median(js).toFixed(1)} ms`);
  if (!loadUsearch()) {
    console.log('  usearch unavailable: no SIMD or HNSW figures');
    return;
  }
  const exact = time((query, row) => exactNearest(features, query, 10, row));
  console.log(`  usearch exact scan (1 thread): median ${median(exact).toFixed(1)} ms`);
  // The product's path: the HNSW index built and saved as `cluster-lens index` does, loaded (hash check included)
  // and searched (over-fetch, exact re-rank, the query's own row dropped) as `cluster-lens neighbours` does.
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'cl-scale-ann-'));
  const source = { header: { checkpointStep: 0, createdAt: new Date().toISOString() }, features };
  let started = performance.now();
  const saved = await writeNeighbourIndex(runDir, source, silentContext(), { minRows: 0 });
  const buildSeconds = (performance.now() - started) / 1000;
  started = performance.now();
  const opened = await openNeighbourIndex(runDir, source);
  const loadSeconds = (performance.now() - started) / 1000;
  if (!opened.approximate || !saved) throw new Error(`the saved index did not open: ${opened.reason}`);
  const index = opened.approximate;
  const approximate = time((query, row) => searchNeighbours(features, index, query, 10, row));
  // Recall@10 against the exact scan, and how close the 10th found neighbour's similarity is to the exact 10th's
  // (isotropic synthetic clusters have many near-ties, where recall understates what a user sees).
  let found = 0;
  let similarityGap = 0;
  for (const row of picks) {
    const query = data.subarray(row * dims, (row + 1) * dims);
    const truth = exactNearest(features, query, 10, row);
    const truthSet = new Set(truth.map((hit) => hit.index));
    const { hits } = searchNeighbours(features, index, query, 10, row);
    found += hits.filter((hit) => truthSet.has(hit.index)).length;
    similarityGap += truth[truth.length - 1].similarity - hits[hits.length - 1].similarity;
  }
  console.log(`  product path, HNSW (${neighbourIndexOptions.quantization}, connectivity ${neighbourIndexOptions.connectivity}, expansion ${neighbourIndexOptions.expansionAdd}/${neighbourIndexOptions.expansionSearch}): build + save ${buildSeconds.toFixed(0)} s (all cores), ${runFiles.neighbourIndex} ${(saved.bytes / 2 ** 20).toFixed(0)} MiB, load ${loadSeconds.toFixed(2)} s (hash check included)`);
  console.log(`  product path query (searchNeighbours, k = 10): median ${median(approximate).toFixed(2)} ms, recall@10 ${(found / (10 * picks.length)).toFixed(3)}, 10th neighbour's similarity ${(similarityGap / picks.length).toFixed(4)} below the exact 10th's on average`);
  rmSync(runDir, { recursive: true, force: true });
  console.log(`  peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
}

async function map(): Promise<void> {
  const count = Number(flags.rows ?? 1_000_000);
  const coordinates = syntheticRows(count, 2, 3);
  const clusters = Int32Array.from({ length: count }, (_, i) => (Math.floor(Math.atan2(coordinates[2 * i + 1], coordinates[2 * i]) * 5) + 20) % 30);
  // Spread the unit circle into blobs of varied density.
  for (let i = 0; i < coordinates.length; i++) coordinates[i] *= 1 + 0.3 * Math.sin(i);
  const file = encodeMapPoints({
    layouts: { pca: coordinates, umap: coordinates },
    clusters,
    confidences: Float32Array.from({ length: count }, (_, i) => (i % 100) / 100),
    labels: Int32Array.from({ length: count }, (_, i) => i % 10),
    labelNames: Array.from({ length: 10 }, (_, i) => `class-${i}`),
    prototypes: 30,
    paths: Array.from({ length: count }, (_, i) => `class-${i % 10}/image-${String(i).padStart(7, '0')}.png`),
  });
  console.log(`map: ${count.toLocaleString('en')} points, map-points.bin ${(file.length / 2 ** 20).toFixed(1)} MiB, headless Chromium (SwiftShader WebGL, no GPU), 1280×800`);
  const view = await openWebview('cluster-map', { files: { 'map-points.bin': file }, viewport: { width: 1280, height: 800 } });
  try {
    const started = performance.now();
    await view.send({ type: 'map.points', pointsUrl: `${view.origin}/files/map-points.bin`, imageBase: `${view.origin}/images`, runName: 'synthetic', clusters: 30 });
    await view.page.locator(`#root[data-ready="${count}"]`).waitFor({ timeout: 120_000 });
    const openSeconds = (performance.now() - started) / 1000;
    const timings = await view.page.evaluate(() => (window as unknown as { clusterMap: { loadTimings(): Record<string, number> } }).clusterMap.loadTimings());
    console.log(`  open: ${openSeconds.toFixed(2)} s from the message to the first frame (page: fetch ${timings.fetchMs.toFixed(0)} ms, decode ${timings.decodeMs.toFixed(0)} ms, all ${timings.totalMs.toFixed(0)} ms)`);
    const intervals = await view.page.evaluate(() => (window as unknown as { clusterMap: { animate(frames: number): Promise<number[]> } }).clusterMap.animate(120));
    const draws = await view.page.evaluate(() => (window as unknown as { clusterMap: { frameTimesMs(): number[] } }).clusterMap.frameTimesMs());
    const recent = draws.slice(-120);
    const budget = await view.page.evaluate(() => (window as unknown as { clusterMap: { movingPointBudget(): number } }).clusterMap.movingPointBudget());
    console.log(`  zoom/pan, 120 frames: frame interval median ${median(intervals).toFixed(1)} ms, p95 ${percentile(intervals, 0.95).toFixed(1)} ms (${(1000 / median(intervals)).toFixed(0)} fps); issuing a draw: median ${median(recent).toFixed(1)} ms; points drawn while moving at the end: ${budget.toLocaleString('en')}`);
    const idle = await view.page.evaluate(() => (window as unknown as { clusterMap: { redrawAll(frames: number): Promise<number[]> } }).clusterMap.redrawAll(30));
    console.log(`  at rest, every point drawn, 30 frames: frame interval median ${median(idle).toFixed(1)} ms, p95 ${percentile(idle, 0.95).toFixed(1)} ms (${(1000 / median(idle)).toFixed(0)} fps)`);
  } finally {
    await view.close();
    await closeBrowser();
  }
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`);
  for (const part of parts) {
    if (part === 'queries') await queries();
    else if (part === 'map') await map();
    else if (part === 'fashion70k') fashion70k();
    else throw new Error(`unknown part "${part}": fashion70k, queries or map`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
