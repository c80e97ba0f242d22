// Jobs over a run's index at scale: its neighbour graph (kept in the run folder), UMAP, near-duplicates,
// outliers, the cluster map's binary file, and exports of the assignments.
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { DuplicatesResult, ExportAssignmentsResult, ExportFormat, LayoutResult, MapPointsResult, OutliersResult } from '../../protocol/engine';
import { candidatePairs, duplicateGroups, mirroredPixelAgreement, outlierScores, type NeighbourGraph } from '../analysis/curation';
import { decodeImage } from '../data/decode';
import { EngineError } from '../errors';
import { throwIfCancelled, yieldToEventLoop, type JobContext } from '../jobContext';
import { readManifest, runPath } from '../runFolder';
import { fileSha256, writeFileAtomic } from '../util/atomicFile';
import { readArchive, writeArchive } from '../util/tensorArchive';
import { approximateNeighbourGraph, exactNeighbourGraph } from './ann';
import { csvLine } from './csvCell';
import type { RunIndex } from './indexer';
import { encodeMapPoints } from './mapPoints';
import { readNeighbourGraph } from './neighbourIndex';
import { cachedIndex } from './runQueries';
import { umapLayout } from './umap';

/** Neighbours kept per image: enough for outliers' default k = 20 and UMAP's 15. */
export const graphNeighbours = 20;
export const defaultDuplicateThreshold = 0.98;
export const defaultOutlierK = 20;
const exactGraphLimit = 20_000;
/** Pearson correlation of the grey thumbnails (mirrored or not) that confirms a candidate pair. */
const pixelAgreementThreshold = 0.98;

interface StampedHeader {
  /** The index the file was computed from (its createdAt): a rebuilt index makes the file stale. */
  indexCreatedAt: string;
  k?: number;
  seed?: number;
}

/** The exact k-NN graph of the index's (L2-normalised) backbone features, computed once and kept in neighbours.bin. */
export async function cachedNeighbourGraph(runDir: string, index: RunIndex, k: number, context: JobContext, fractionRange: [number, number] = [0, 1]): Promise<NeighbourGraph> {
  const file = runPath(runDir, 'neighbourGraph');
  const wanted = Math.min(Math.max(k, graphNeighbours), Math.max(1, index.features.rows - 1));
  // A stale graph (another index, fewer neighbours) is recomputed; so is one that cannot be trusted (BAD_RUN:
  // neighbours outside the rows, a shape that disagrees with the index), said in the log, and the file replaced.
  try {
    const stored = await readNeighbourGraph(runDir, index, wanted);
    if (stored) return stored;
  } catch (error) {
    context.log('warn', `${(error as Error).message} Computing the neighbour graph again.`);
  }
  // Exact up to 20,000 images (deterministic, seconds); HNSW above, where an exact graph takes minutes.
  const graph = index.features.rows <= exactGraphLimit ? await exactNeighbourGraph(index.features, wanted, context, fractionRange) : await approximateNeighbourGraph(index.features, wanted, context, fractionRange);
  await writeArchive<StampedHeader>(
    file,
    { indexCreatedAt: index.header.createdAt, k: graph.k },
    new Map([
      ['indices', { shape: [index.features.rows, graph.k], values: graph.indices }],
      ['similarities', { shape: [index.features.rows, graph.k], values: graph.similarities }],
    ]),
  );
  return graph;
}

/** The run's UMAP coordinates (N × 2) when the run folder holds a current layout. */
async function storedUmap(runDir: string, index: RunIndex): Promise<Float32Array | undefined> {
  const file = runPath(runDir, 'umap');
  if (!existsSync(file)) return undefined;
  try {
    const archive = await readArchive<StampedHeader>(file);
    const values = archive.arrays.get('umap')?.values;
    if (archive.header.indexCreatedAt === index.header.createdAt && values instanceof Float32Array && values.length === 2 * index.features.rows) return values;
  } catch {
    // A damaged file is recomputed.
  }
  return undefined;
}

export async function computeUmap(runDir: string, options: { seed?: number; force?: boolean }, context: JobContext): Promise<LayoutResult> {
  const startedAt = Date.now();
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const file = runPath(resolved, 'umap');
  const done = (computed: boolean): LayoutResult => ({ kind: 'layout', runDir: resolved, layout: 'umap', images: index.features.rows, computed, durationMs: Date.now() - startedAt, path: file });
  if (!options.force && options.seed === undefined && (await storedUmap(resolved, index))) return done(false);
  if (index.features.rows < 3) throw new EngineError('BAD_REQUEST', `UMAP needs at least 3 images; ${resolved} has ${index.features.rows}.`);
  const graph = await cachedNeighbourGraph(resolved, index, graphNeighbours, context, [0, 0.4]);
  const coordinates = await umapLayout(graph, { seed: options.seed ?? 0 }, context, [0.4, 1]);
  await writeArchive<StampedHeader>(file, { indexCreatedAt: index.header.createdAt, seed: options.seed ?? 0 }, new Map([['umap', { shape: [index.features.rows, 2], values: coordinates }]]));
  return done(true);
}

/** Writes map-points.bin from the index, its UMAP (when computed) and outlier scores (when the graph exists). */
export async function writeMapPoints(runDir: string): Promise<MapPointsResult> {
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const { probabilities, assignments } = index;
  const confidences = new Float32Array(assignments.length);
  for (let row = 0; row < assignments.length; row++) confidences[row] = probabilities.data[row * probabilities.dims + assignments[row]];
  const umap = await storedUmap(resolved, index);
  let outliers: Float32Array | undefined;
  if (existsSync(runPath(resolved, 'neighbourGraph'))) {
    const graph = await cachedNeighbourGraph(resolved, index, graphNeighbours, { signal: new AbortController().signal, progress: () => undefined, log: () => undefined });
    outliers = outlierScores(graph, defaultOutlierK);
  }
  const file = runPath(resolved, 'mapPoints');
  const bytes = encodeMapPoints({
    layouts: { pca: index.map.data, ...(umap ? { umap } : {}) },
    clusters: assignments,
    confidences,
    labels: Int32Array.from(index.header.records, (record) => record.label),
    labelNames: index.header.labelNames,
    prototypes: probabilities.dims,
    paths: index.header.records.map((record) => record.path),
    outlierScores: outliers,
  });
  await writeFileAtomic(file, bytes);
  return {
    kind: 'mapPoints',
    runDir: resolved,
    imagesDir: index.header.imagesDir,
    path: file,
    images: assignments.length,
    clusters: index.header.clusters.length,
    layouts: umap ? ['pca', 'umap'] : ['pca'],
  };
}

export async function findDuplicates(runDir: string, threshold: number | undefined, context: JobContext): Promise<DuplicatesResult> {
  const startedAt = Date.now();
  const level = threshold ?? defaultDuplicateThreshold;
  if (!(level > 0 && level <= 1)) throw new EngineError('BAD_REQUEST', `--threshold must be a cosine similarity in (0, 1], got ${threshold}.`);
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const records = index.header.records;
  // Identical bytes first: exact copies group whatever the model makes of them.
  const hashes: string[] = new Array(records.length);
  for (let row = 0; row < records.length; row++) {
    try {
      hashes[row] = await fileSha256(path.join(index.header.imagesDir, records[row].path));
    } catch {
      hashes[row] = `missing:${row}`;
    }
    if (row % 500 === 499) {
      throwIfCancelled(context.signal);
      context.progress({ phase: 'curate', fraction: (0.3 * (row + 1)) / records.length, message: `Hashing files ${row + 1}/${records.length}` });
      await yieldToEventLoop();
    }
  }
  const graph = await cachedNeighbourGraph(resolved, index, graphNeighbours, context, [0.3, 0.8]);
  // Candidates: graph neighbours whose backbone features agree to the threshold.
  const candidates = candidatePairs(graph, level);
  // Confirmation: the two pictures agree pixel for pixel (correlation), mirrored or not. Features alone group
  // look-alikes (measured on the sample with a briefly trained model: a 113-image group of shirts and sandals at 0.98).
  // At the size the model sees: a mirrored copy then shrinks to the mirror of the thumbnail (at 32 px from 28,
  // sharp's resampling shifts it by a pixel), and look-alikes differ more than at 16 px.
  const sidePx = (await readManifest(resolved).catch(() => undefined))?.options.imageSizePx ?? 64;
  const thumbnails = new Map<number, Uint8Array | undefined>();
  const thumbnail = async (row: number) => {
    if (!thumbnails.has(row)) thumbnails.set(row, await decodeImage(path.join(index.header.imagesDir, records[row].path), sidePx, 1).catch(() => undefined));
    return thumbnails.get(row);
  };
  const confirmed = [];
  for (const [position, pair] of candidates.entries()) {
    const [a, b] = [await thumbnail(pair.a), await thumbnail(pair.b)];
    if (a && b && mirroredPixelAgreement(a, b, sidePx) >= pixelAgreementThreshold) confirmed.push(pair);
    if (position % 200 === 199) {
      throwIfCancelled(context.signal);
      context.progress({ phase: 'curate', fraction: 0.8 + (0.2 * (position + 1)) / candidates.length, message: `Comparing candidate pairs ${position + 1}/${candidates.length}` });
      await yieldToEventLoop();
    }
  }
  const groups = duplicateGroups(records.length, confirmed, hashes);
  return {
    kind: 'duplicates',
    runDir: resolved,
    imagesDir: index.header.imagesDir,
    threshold: level,
    images: records.length,
    groups: groups.map((group) => ({ imageIndices: group.members, paths: group.members.map((member) => records[member].path), exact: group.exact, minSimilarity: group.minSimilarity })),
    durationMs: Date.now() - startedAt,
  };
}

export async function findOutliers(runDir: string, k: number | undefined, limit: number | undefined, context: JobContext): Promise<OutliersResult> {
  const startedAt = Date.now();
  const neighbours = k ?? defaultOutlierK;
  if (!Number.isInteger(neighbours) || neighbours < 1) throw new EngineError('BAD_REQUEST', `--k must be a whole number ≥ 1, got ${k}.`);
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const graph = await cachedNeighbourGraph(resolved, index, neighbours, context, [0, 0.95]);
  const scores = outlierScores(graph, neighbours);
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  return {
    kind: 'outliers',
    runDir: resolved,
    imagesDir: index.header.imagesDir,
    k: Math.min(neighbours, graph.k),
    images: scores.length,
    outliers: order.slice(0, Math.max(1, limit ?? 100)).map((row) => ({ imageIndex: row, path: index.header.records[row].path, score: scores[row], cluster: index.assignments[row] })),
    durationMs: Date.now() - startedAt,
  };
}

export const exportColumns = ['path', 'cluster', 'probability', 'label', 'map_x', 'map_y', 'outlier_score'] as const;
export const exportFormats: readonly ExportFormat[] = ['csv', 'json', 'parquet'];

type ExportRow = { [column in (typeof exportColumns)[number]]: column extends 'path' | 'label' ? string : number };

/**
 * The rows as one Parquet file (Snappy), typed columns in `exportColumns` order: what pandas, polars and DuckDB
 * read directly. hyparquet-writer is pure JS, so no native build and nothing downloaded.
 */
function assignmentsParquet(rows: ExportRow[]): Buffer {
  const column = <K extends (typeof exportColumns)[number]>(name: K) => rows.map((row) => row[name]);
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'path', data: column('path'), type: 'STRING', nullable: false },
      { name: 'cluster', data: Int32Array.from(column('cluster')), type: 'INT32', nullable: false },
      { name: 'probability', data: Float32Array.from(column('probability')), type: 'FLOAT', nullable: false },
      { name: 'label', data: column('label'), type: 'STRING', nullable: false },
      { name: 'map_x', data: Float32Array.from(column('map_x')), type: 'FLOAT', nullable: false },
      { name: 'map_y', data: Float32Array.from(column('map_y')), type: 'FLOAT', nullable: false },
      { name: 'outlier_score', data: Float32Array.from(column('outlier_score')), type: 'FLOAT', nullable: false },
    ],
    createdBy: 'cluster-lens',
  });
  return Buffer.from(buffer);
}

export async function exportAssignments(runDir: string, format: ExportFormat, outPath: string, context: JobContext): Promise<ExportAssignmentsResult> {
  if (!exportFormats.includes(format)) throw new EngineError('BAD_REQUEST', `--format must be ${exportFormats.join(', ')}; got "${String(format)}".`);
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const graph = await cachedNeighbourGraph(resolved, index, defaultOutlierK, context, [0, 0.9]);
  const scores = outlierScores(graph, defaultOutlierK);
  // The map columns follow what the map shows by default: UMAP where computed, else PCA.
  const map = (await storedUmap(resolved, index)) ?? index.map.data;
  const { records, labelNames } = index.header;
  const rows = records.map((record, row) => ({
    path: record.path,
    cluster: index.assignments[row],
    probability: index.probabilities.data[row * index.probabilities.dims + index.assignments[row]],
    label: record.label >= 0 ? (labelNames[record.label] ?? String(record.label)) : '',
    map_x: map[2 * row],
    map_y: map[2 * row + 1],
    outlier_score: scores[row],
  }));
  const contents =
    format === 'parquet'
      ? assignmentsParquet(rows)
      : format === 'json'
        ? `${JSON.stringify({ runDir: resolved, imagesDir: index.header.imagesDir, columns: exportColumns, rows }, null, 1)}\n`
        : `${csvLine(exportColumns)}\n${rows.map((row) => csvLine(exportColumns.map((column) => row[column]))).join('\n')}\n`;
  await fs.mkdir(path.dirname(path.resolve(outPath)), { recursive: true });
  await writeFileAtomic(path.resolve(outPath), contents);
  return { kind: 'exportAssignments', runDir: resolved, format, outPath: path.resolve(outPath), rows: rows.length, columns: [...exportColumns] };
}
