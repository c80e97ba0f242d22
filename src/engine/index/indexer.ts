import { existsSync } from 'node:fs';
import type { ClusterSummary, ImageRecord, SkippedFile } from '../../protocol/options';
import type { IndexResult } from '../../protocol/engine';
import { summarizeClusters } from '../analysis/clusterStats';
import type { Matrix } from '../analysis/matrix';
import type { ImageSet } from '../data/decode';
import { EngineError } from '../errors';
import { throwIfCancelled, type JobContext } from '../jobContext';
import type { SwavModel } from '../model/model';
import { runPath } from '../runFolder';
import { readArchive, writeArchive, type ArchiveArray } from '../util/tensorArchive';
import { pca } from './pca';
import { embedWithOnnxRuntime, type EmbedOutput } from './ortEmbed';
import { ranOnKind } from '../runtime/device';
import { writeNeighbourIndex } from './neighbourIndex';

export interface IndexHeader {
  format: 'cluster-lens-index';
  imagesDir: string;
  records: ImageRecord[];
  labelNames: string[];
  skipped: SkippedFile[];
  clusters: ClusterSummary[];
  pcaExplainedVariance: number[];
  checkpointStep: number;
  createdAt: string;
}

/** Everything the views and queries need about every image, in memory. */
export interface RunIndex {
  header: IndexHeader;
  /** L2-normalised backbone features, N × F: neighbours, k-means, kNN. */
  features: Matrix;
  /** L2-normalised projections, N × D: the space the prototypes live in. */
  embeddings: Matrix;
  /** Softmax of prototype scores at the training temperature, N × K. */
  probabilities: Matrix;
  assignments: Int32Array;
  /** PCA of the projections, N × 2: the cluster map. */
  map: Matrix;
}

export type { EmbedOutput };

/** Softmax of scores / T per row, the assignment (argmax) and its probability. */
export function assignPrototypes(scores: Matrix, temperature: number): { probabilities: Matrix; assignments: Int32Array; confidences: Float32Array } {
  const probabilities = new Float32Array(scores.data.length);
  const assignments = new Int32Array(scores.rows);
  const confidences = new Float32Array(scores.rows);
  for (let row = 0; row < scores.rows; row++) {
    const offset = row * scores.dims;
    let max = -Infinity;
    let argMax = 0;
    for (let k = 0; k < scores.dims; k++) {
      if (scores.data[offset + k] > max) {
        max = scores.data[offset + k];
        argMax = k;
      }
    }
    let sum = 0;
    for (let k = 0; k < scores.dims; k++) sum += probabilities[offset + k] = Math.exp((scores.data[offset + k] - max) / temperature);
    for (let k = 0; k < scores.dims; k++) probabilities[offset + k] /= sum;
    assignments[row] = argMax;
    confidences[row] = probabilities[offset + argMax];
  }
  return { probabilities: { data: probabilities, rows: scores.rows, dims: scores.dims }, assignments, confidences };
}

/** Embeds every image, assigns clusters, projects to 2-D and writes `index.bin` atomically. */
export async function buildIndex(
  model: SwavModel,
  images: ImageSet,
  meta: { runDir: string; checkpointStep: number; temperature?: number },
  context: JobContext,
): Promise<IndexResult> {
  const startedAt = Date.now();
  const embedded = await embedWithOnnxRuntime(model, images, context, [0.9, 0.98]);
  return writeIndex(embedded, images, { ...meta, startedAt }, context);
}

/**
 * Assigns clusters, projects to 2-D and writes `index.bin` atomically from features (L2-normalised),
 * embeddings and prototype scores computed elsewhere: by the engine's model, or by a frozen ONNX backbone.
 */
export async function writeIndex(
  embedded: EmbedOutput,
  images: ImageSet,
  meta: {
    runDir: string;
    checkpointStep: number;
    temperature?: number;
    startedAt?: number;
    /** Rows from which an HNSW neighbour index is saved too (default approximateSearchMinRows; tests lower it). */
    neighbourIndexMinRows?: number;
  },
  context: JobContext,
): Promise<IndexResult> {
  const startedAt = meta.startedAt ?? Date.now();
  const { probabilities, assignments, confidences } = assignPrototypes(embedded.scores, meta.temperature ?? 0.1);
  const projection = pca(embedded.embeddings, 2);
  const labels = Int32Array.from(images.records, (r) => r.label);
  const clusters = summarizeClusters({
    assignments,
    confidences,
    prototypeScores: embedded.scores,
    labels: images.labelNames.length ? labels : undefined,
    labelNames: images.labelNames.length ? images.labelNames : undefined,
  });
  const header: IndexHeader = {
    format: 'cluster-lens-index',
    imagesDir: images.root,
    records: images.records,
    labelNames: images.labelNames,
    skipped: images.skipped,
    clusters,
    pcaExplainedVariance: projection.explainedVarianceRatio,
    checkpointStep: meta.checkpointStep,
    createdAt: new Date().toISOString(),
  };
  const arrays = new Map<string, { shape: number[]; values: ArchiveArray }>([
    ['features', { shape: [embedded.features.rows, embedded.features.dims], values: embedded.features.data }],
    ['embeddings', { shape: [embedded.embeddings.rows, embedded.embeddings.dims], values: embedded.embeddings.data }],
    ['probabilities', { shape: [probabilities.rows, probabilities.dims], values: probabilities.data }],
    ['assignments', { shape: [assignments.length], values: assignments }],
    ['map', { shape: [projection.projected.rows, projection.projected.dims], values: projection.projected.data }],
  ]);
  const indexPath = runPath(meta.runDir, 'index');
  throwIfCancelled(context.signal);
  await writeArchive(indexPath, header, arrays);
  // After index.bin: the HNSW index is stamped with this header, and a cancelled or failed build leaves a usable
  // index whose queries use the exact scan.
  try {
    await writeNeighbourIndex(meta.runDir, { header, features: embedded.features }, context, { minRows: meta.neighbourIndexMinRows, fractionRange: [0.98, 1] });
  } catch (error) {
    if (context.signal.aborted) throw error;
    context.log('warn', `The HNSW neighbour index could not be built (${(error as Error).message}); neighbour queries use the exact scan.`);
  }
  const durationMs = Date.now() - startedAt;
  context.progress({ phase: 'index', fraction: 1, message: `Indexed ${images.records.length} images` });
  return {
    kind: 'index',
    runDir: meta.runDir,
    images: images.records.length,
    skipped: images.skipped,
    clusters,
    imagesPerSecond: images.records.length / Math.max(durationMs / 1000, 1e-3),
    ...(embedded.forwardMs ? { forwardImagesPerSecond: images.records.length / Math.max(embedded.forwardMs / 1000, 1e-3) } : {}),
    durationMs,
    indexPath,
    ...ranOnKind(embedded.device ?? 'cpu'),
  };
}

export async function readIndex(runDir: string): Promise<RunIndex> {
  const file = runPath(runDir, 'index');
  if (!existsSync(runDir)) throw new EngineError('NOT_FOUND', `The run folder ${runDir} does not exist. Pass a folder made by "cluster-lens train".`);
  if (!existsSync(file)) throw new EngineError('NO_INDEX', `The run ${runDir} has no index yet. Run "cluster-lens index ${runDir}" (or train to the end) first.`);
  let archive;
  try {
    archive = await readArchive<IndexHeader>(file);
  } catch (error) {
    throw new EngineError('NO_INDEX', `The index ${file} cannot be read (${(error as Error).message}). Rebuild it with "cluster-lens index ${runDir}".`, String(error));
  }
  const matrix = (name: string): Matrix => {
    const entry = archive.arrays.get(name);
    if (!entry) throw new EngineError('NO_INDEX', `The index ${file} lacks "${name}". Rebuild it with "cluster-lens index ${runDir}".`);
    return { data: entry.values as Float32Array, rows: entry.shape[0], dims: entry.shape[1] ?? 1 };
  };
  return {
    header: archive.header,
    features: matrix('features'),
    embeddings: matrix('embeddings'),
    probabilities: matrix('probabilities'),
    assignments: matrix('assignments').data as unknown as Int32Array,
    map: matrix('map'),
  };
}
