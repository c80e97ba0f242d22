import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { ClusterSummary, ImageRecord, SkippedFile } from '../../protocol/options';
import type { IndexResult } from '../../protocol/engine';
import { summarizeClusters } from '../analysis/clusterStats';
import type { Matrix } from '../analysis/matrix';
import type { ImageSet } from '../data/decode';
import { EngineError, runFileError } from '../errors';
import { throwIfCancelled, type JobContext } from '../jobContext';
import type { SwavModel } from '../model/model';
import { isSafeRecordPath, readRunImagesFolder, runPath } from '../runFolder';
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

/**
 * index.bin, checked against itself and run.json (NO_INDEX when it is missing or unreadable, BAD_RUN when it reads
 * but cannot be trusted): every array has the records' rows and a whole shape, the assignments are prototypes of
 * the probabilities, the values are finite, and its images folder is run.json's, every record path inside it.
 */
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
  const rebuild = `Rebuild it with "cluster-lens index ${runDir}"`;
  const bad = (field: string, problem: string, fix = rebuild) => runFileError(file, field, problem, fix);
  const header = archive.header as Partial<IndexHeader> | null;
  if (typeof header !== 'object' || header === null || header.format !== 'cluster-lens-index') throw bad('"format"', `is ${JSON.stringify(header?.format)}, not "cluster-lens-index"`);
  if (!Array.isArray(header.records)) throw bad('"records"', 'is not a list');
  const rows = header.records.length;

  // The images folder: run.json's (the record the run was trained from), and every record path inside it.
  const manifestFile = runPath(runDir, 'manifest');
  const { imagesDir, realDir } = await readRunImagesFolder(runDir);
  if (typeof header.imagesDir !== 'string' || !(path.resolve(header.imagesDir) === path.resolve(imagesDir) || (await realPath(header.imagesDir)) === realDir)) {
    throw bad(
      '"imagesDir"',
      `is ${JSON.stringify(header.imagesDir)}, but ${manifestFile} says the run's images are in ${JSON.stringify(imagesDir)}`,
      `If the images are in ${imagesDir}, ${rebuild.charAt(0).toLowerCase()}${rebuild.slice(1)}; otherwise restore "imagesDir" in ${manifestFile}`,
    );
  }
  header.records.forEach((record, row) => {
    if (typeof record !== 'object' || record === null || !isSafeRecordPath(record.path)) {
      throw bad(`"records[${row}].path"`, `is ${JSON.stringify((record as Partial<ImageRecord> | null)?.path)}; a record path must be relative to the images folder ${imagesDir} and stay inside it (no "..", not absolute)`);
    }
    if (!Number.isInteger(record.label) || record.label < -1) throw bad(`"records[${row}].label"`, `is ${JSON.stringify(record.label)}; it must be a whole number ≥ -1`);
  });
  if (header.labelNames !== undefined && !(Array.isArray(header.labelNames) && header.labelNames.every((name) => typeof name === 'string'))) throw bad('"labelNames"', 'must be a list of strings');
  if (!Array.isArray(header.clusters)) throw bad('"clusters"', 'is not a list');
  for (const [position, cluster] of header.clusters.entries()) {
    const samples = (cluster as Partial<ClusterSummary> | null)?.samples;
    if (!Array.isArray(samples) || samples.some((sample) => !(Number.isInteger(sample) && sample >= 0 && sample < rows))) throw bad(`"clusters[${position}].samples"`, `must list rows of the index (0 to ${rows - 1})`);
  }
  if (!Number.isSafeInteger(header.checkpointStep)) throw bad('"checkpointStep"', `is ${JSON.stringify(header.checkpointStep)}; it must be a whole number`);

  const array = (name: string, dtype: 'float32' | 'int32', dims?: number) => {
    const entry = archive.arrays.get(name);
    if (!entry) throw new EngineError('NO_INDEX', `The index ${file} lacks "${name}". ${rebuild}.`);
    const { shape, values } = entry;
    const rank = dims === undefined ? 1 : 2;
    if (!(Array.isArray(shape) && shape.length === rank && shape.every((size) => Number.isSafeInteger(size) && size >= 0))) throw bad(`array "${name}"`, `has shape ${JSON.stringify(shape)}; it must be ${rank === 1 ? '[rows]' : '[rows, dims]'}`);
    if (shape[0] !== rows) throw bad(`array "${name}"`, `has ${shape[0]} rows, but "records" lists ${rows} images`);
    if (rank === 2 && shape[1] < 1) throw bad(`array "${name}"`, `has ${shape[1]} columns`);
    if (dims !== undefined && dims > 0 && shape[1] !== dims) throw bad(`array "${name}"`, `has ${shape[1]} columns, not ${dims}`);
    const count = shape.reduce((product, size) => product * size, 1);
    if (values.length !== count) throw bad(`array "${name}"`, `holds ${values.length} values, but its shape [${shape.join(', ')}] needs ${count}`);
    if (!(dtype === 'int32' ? values instanceof Int32Array : values instanceof Float32Array)) throw bad(`array "${name}"`, `is not ${dtype}`);
    if (values instanceof Float32Array) {
      for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) throw bad(`array "${name}"`, `holds ${values[i]} at row ${Math.floor(i / (shape[1] ?? 1))}; every value must be finite`);
    }
    return entry;
  };
  const matrix = (name: string, dims = 0): Matrix => {
    const { shape, values } = array(name, 'float32', dims);
    return { data: values as Float32Array, rows: shape[0], dims: shape[1] };
  };
  const features = matrix('features');
  const embeddings = matrix('embeddings');
  const probabilities = matrix('probabilities');
  const assignments = array('assignments', 'int32').values as Int32Array;
  for (let row = 0; row < rows; row++) {
    if (!(assignments[row] >= 0 && assignments[row] < probabilities.dims)) throw bad('array "assignments"', `holds ${assignments[row]} at row ${row}; an assignment must be a prototype from 0 to ${probabilities.dims - 1}`);
  }
  return {
    header: header as IndexHeader,
    features,
    embeddings,
    probabilities,
    assignments,
    map: matrix('map', 2),
  };
}

async function realPath(dir: string): Promise<string> {
  try {
    return await fs.realpath(dir);
  } catch {
    return path.resolve(dir);
  }
}
