import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { RunOverview } from '../../protocol/engine';
import { EngineError } from '../errors';
import type { JobContext } from '../jobContext';
import { checkpointPath, loadCheckpoint, type LoadedCheckpoint } from '../model/checkpoint';
import { disposeModel } from '../model/model';
import { runPath } from '../runFolder';
import { readIndex, type RunIndex } from './indexer';
import { openNeighbourIndex, type OpenedNeighbourIndex } from './neighbourIndex';

/**
 * Loaded runs stay in memory between queries, until their files change; a run's HNSW index is loaded on its first
 * query, and opened again when its stamp file changes (an index job still building it when the run was loaded).
 */
const indexCache = new Map<string, { mtimeMs: number; manifestMtimeMs: number; index: RunIndex; neighbourIndex?: { stampMtimeMs: number; opened: Promise<OpenedNeighbourIndex> } }>();

const modelCache = new Map<string, { mtimeMs: number; checkpoint: LoadedCheckpoint }>();

function mtimeOf(file: string): number {
  return existsSync(file) ? statSync(file).mtimeMs : -1;
}

/** index.bin as readIndex checked it; read again when it or run.json (its images folder) changes. */
export async function cachedIndex(runDir: string): Promise<RunIndex> {
  const mtimeMs = mtimeOf(runPath(runDir, 'index'));
  const manifestMtimeMs = mtimeOf(runPath(runDir, 'manifest'));
  const cached = indexCache.get(runDir);
  if (cached && cached.mtimeMs === mtimeMs && cached.manifestMtimeMs === manifestMtimeMs) return cached.index;
  const index = await readIndex(runDir);
  indexCache.set(runDir, { mtimeMs, manifestMtimeMs, index });
  return index;
}

export async function cachedCheckpoint(runDir: string): Promise<LoadedCheckpoint> {
  const file = checkpointPath(runDir);
  const mtimeMs = mtimeOf(file);
  const cached = modelCache.get(runDir);
  if (cached && cached.mtimeMs === mtimeMs) return cached.checkpoint;
  if (cached) disposeModel(cached.checkpoint.model);
  const checkpoint = await loadCheckpoint(file);
  modelCache.set(runDir, { mtimeMs, checkpoint });
  return checkpoint;
}

/**
 * The run's saved HNSW index, held with the loaded index.bin (forgetRun releases both), or why its queries use the
 * exact scan (logged when it is opened).
 */
export async function cachedNeighbourIndex(runDir: string, context: JobContext): Promise<OpenedNeighbourIndex> {
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const entry = indexCache.get(resolved);
  if (!entry || entry.index !== index) return openNeighbourIndex(resolved, index);
  const stampMtimeMs = mtimeOf(runPath(resolved, 'neighbourIndexStamp'));
  if (entry.neighbourIndex?.stampMtimeMs !== stampMtimeMs) {
    const opened = openNeighbourIndex(resolved, index);
    entry.neighbourIndex = { stampMtimeMs, opened };
    const { reason } = await opened;
    if (reason) context.log('info', `Neighbour queries use the exact scan: ${reason}.`);
  }
  return entry.neighbourIndex.opened;
}

export function forgetRun(runDir: string): void {
  const resolved = path.resolve(runDir);
  indexCache.delete(resolved);
  const cached = modelCache.get(resolved);
  if (cached) disposeModel(cached.checkpoint.model);
  modelCache.delete(resolved);
}

/** What the cluster map and the gallery show: paths, 2-D map, assignments and cluster summaries. */
export async function runOverview(runDir: string): Promise<RunOverview> {
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const { probabilities, assignments } = index;
  const confidences = Array.from(assignments, (cluster, row) => probabilities.data[row * probabilities.dims + cluster]);
  return {
    runDir: resolved,
    imagesDir: index.header.imagesDir,
    paths: index.header.records.map((record) => record.path),
    assignments: Array.from(assignments),
    confidences,
    labels: index.header.records.map((record) => record.label),
    labelNames: index.header.labelNames,
    clusters: index.header.clusters,
    prototypes: probabilities.dims,
  };
}
