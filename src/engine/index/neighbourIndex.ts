// A large run's HNSW index (usearch), built when the run is indexed and saved beside index.bin, so a single-image
// neighbour query stays fast at 1M images. Small runs, and any run whose saved index cannot be trusted, use the
// exact scan.
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import type { NeighbourGraph } from '../analysis/curation';
import type { Matrix } from '../analysis/matrix';
import { EngineError, runFileError } from '../errors';
import type { JobContext } from '../jobContext';
import { runFiles, runPath } from '../runFolder';
import { fileSha256, replaceFileAtomic, writeFileAtomic } from '../util/atomicFile';
import { readArchive } from '../util/tensorArchive';
import { buildApproximateIndex, exactNearest, loadApproximateIndex, loadUsearch, unavailableReason, type ApproximateIndex, type ApproximateIndexOptions } from './ann';
import type { ScoredIndex } from './neighbours';

/**
 * Runs with more rows than this get an HNSW index. Measured (scripts/bench/scale.ts, 128-d, 2 cores): usearch's
 * exact SIMD scan takes 14.8 ms a query at 100k rows and 90–208 ms at 1M (the spread is machine load), growing
 * with the rows. The switch sits well below where the scan nears the 50 ms target, leaving room for slower or
 * busier machines, and costs little there (a 100k index builds in 5 s); smaller runs keep exact answers and no
 * extra file.
 */
const defaultApproximateSearchMinRows = 50_000;

/** The threshold in force: CLUSTER_LENS_HNSW_MIN_IMAGES (a whole number of images, for tests and trials), else 50,000. */
export function approximateSearchMinRows(): number {
  const fromEnvironment = process.env.CLUSTER_LENS_HNSW_MIN_IMAGES?.trim();
  if (!fromEnvironment) return defaultApproximateSearchMinRows;
  const rows = Number(fromEnvironment);
  if (!Number.isInteger(rows) || rows < 1) throw new EngineError('BAD_CONFIG', `CLUSTER_LENS_HNSW_MIN_IMAGES is "${fromEnvironment}"; it must be a whole number of images, 1 or more.`);
  return rows;
}

/**
 * The product's HNSW parameters, measured at 1M × 128 on synthetic clusters (scripts/bench/scale.ts `queries`):
 * searching 256 candidates instead of 64 raised recall@10 from 0.65–0.75 to 0.80 at 0.7 ms a query; 16-bit
 * storage gained little (0.85) for a 1.5× larger file and a slower build, so the graph's build effort, not i8, is
 * what limits recall there (at 100k, recall@10 is 0.98).
 */
export const neighbourIndexOptions = { quantization: 'i8', connectivity: 12, expansionAdd: 40, expansionSearch: 256 } satisfies ApproximateIndexOptions;

/** What the saved index was built from, so an index of other features (a re-index, another checkpoint) is never used. */
export interface NeighbourIndexStamp {
  format: 'cluster-lens-neighbour-index';
  rows: number;
  dims: number;
  checkpointStep: number;
  /** index.bin's header createdAt. */
  indexCreatedAt: string;
  /** SHA-1 of up to 256 evenly spaced feature rows. */
  featuresFingerprint: string;
  /** How it was built: a file built with other parameters (an older version's) is rebuilt, not misread. */
  quantization: string;
  connectivity: number;
  expansionAdd: number;
  /** The saved file's size and SHA-256: usearch trusts what it reads, and a damaged file can abort the process. */
  fileBytes: number;
  fileSha256: string;
}

interface IndexedFeatures {
  header: { checkpointStep: number; createdAt: string };
  features: Matrix;
}

function featuresFingerprint(features: Matrix): string {
  const hash = createHash('sha1');
  const samples = Math.min(features.rows, 256);
  for (let s = 0; s < samples; s++) {
    const row = Math.floor((s * features.rows) / samples);
    const values = features.data.subarray(row * features.dims, (row + 1) * features.dims);
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  return hash.digest('hex');
}

function sameSource(stamp: NeighbourIndexStamp, source: IndexedFeatures): boolean {
  return (
    stamp.format === 'cluster-lens-neighbour-index' &&
    stamp.rows === source.features.rows &&
    stamp.dims === source.features.dims &&
    stamp.checkpointStep === source.header.checkpointStep &&
    stamp.indexCreatedAt === source.header.createdAt &&
    stamp.featuresFingerprint === featuresFingerprint(source.features) &&
    stamp.quantization === neighbourIndexOptions.quantization &&
    stamp.connectivity === neighbourIndexOptions.connectivity &&
    stamp.expansionAdd === neighbourIndexOptions.expansionAdd
  );
}

/** Removes a saved index and its stamp (stamp first: a stamp without its file is ignored, a file without its stamp too). */
export async function removeNeighbourIndex(runDir: string): Promise<void> {
  await fs.rm(runPath(runDir, 'neighbourIndexStamp'), { force: true });
  await fs.rm(runPath(runDir, 'neighbourIndex'), { force: true });
}

/**
 * Builds and saves the HNSW index of a freshly written index.bin when it has at least `minRows` rows (progress
 * and cancellation between chunks of rows); any older saved index is removed first. Returns the saved file's
 * size, or undefined when none was built (a small run, or usearch missing: queries then use the exact scan).
 */
export async function writeNeighbourIndex(
  runDir: string,
  source: IndexedFeatures,
  context: JobContext,
  options: { minRows?: number; fractionRange?: [number, number] } = {},
): Promise<{ file: string; bytes: number } | undefined> {
  await removeNeighbourIndex(runDir);
  const rows = source.features.rows;
  if (rows < (options.minRows ?? approximateSearchMinRows())) return undefined;
  if (!loadUsearch()) {
    context.log('warn', `usearch is unavailable (${unavailableReason}); neighbour queries over these ${rows} images will use the exact scan.`);
    return undefined;
  }
  const file = runPath(runDir, 'neighbourIndex');
  const started = performance.now();
  const index = await buildApproximateIndex(source.features, context, options.fractionRange ?? [0, 1], neighbourIndexOptions);
  let stamp: NeighbourIndexStamp | undefined;
  await replaceFileAtomic(file, async (temporary) => {
    index.save(temporary);
    stamp = {
      format: 'cluster-lens-neighbour-index',
      rows,
      dims: source.features.dims,
      checkpointStep: source.header.checkpointStep,
      indexCreatedAt: source.header.createdAt,
      featuresFingerprint: featuresFingerprint(source.features),
      quantization: neighbourIndexOptions.quantization,
      connectivity: neighbourIndexOptions.connectivity,
      expansionAdd: neighbourIndexOptions.expansionAdd,
      fileBytes: (await fs.stat(temporary)).size,
      fileSha256: await fileSha256(temporary),
    };
  });
  await writeFileAtomic(runPath(runDir, 'neighbourIndexStamp'), JSON.stringify(stamp, null, 2));
  context.log('info', `Saved the HNSW neighbour index of ${rows} images (${(stamp!.fileBytes / 2 ** 20).toFixed(1)} MiB) in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
  return { file, bytes: stamp!.fileBytes };
}

/** A run's saved HNSW index, or why its queries use the exact scan. */
export type OpenedNeighbourIndex = { approximate: ApproximateIndex; reason?: undefined } | { approximate?: undefined; reason: string };

/** Loads the saved index when it exists, belongs to this index.bin and is intact; otherwise says why not. */
export async function openNeighbourIndex(runDir: string, source: IndexedFeatures): Promise<OpenedNeighbourIndex> {
  const file = runPath(runDir, 'neighbourIndex');
  const stampFile = runPath(runDir, 'neighbourIndexStamp');
  const rows = source.features.rows;
  const rebuild = `"cluster-lens index ${runDir}" rebuilds it`;
  const hasFile = existsSync(file);
  const hasStamp = existsSync(stampFile);
  const minRows = approximateSearchMinRows();
  if (!hasFile && !hasStamp && rows < minRows) {
    return { reason: `${rows.toLocaleString('en')} images, under the ${minRows.toLocaleString('en')} that get an HNSW index` };
  }
  if (!hasFile || !hasStamp) return { reason: `${hasFile ? stampFile : file} is missing; ${rebuild}` };
  if (!loadUsearch()) return { reason: `usearch is unavailable (${unavailableReason})` };
  let stamp: NeighbourIndexStamp;
  try {
    stamp = JSON.parse(await fs.readFile(stampFile, 'utf8')) as NeighbourIndexStamp;
  } catch (error) {
    return { reason: `${stampFile} cannot be read (${(error as Error).message}); ${rebuild}` };
  }
  if (!sameSource(stamp, source)) return { reason: `${file} was built from another index (stale); ${rebuild}` };
  const bytes = (await fs.stat(file)).size;
  if (bytes !== stamp.fileBytes || (await fileSha256(file)) !== stamp.fileSha256) return { reason: `${file} is damaged (its size or hash differs from ${runFiles.neighbourIndexStamp}); ${rebuild}` };
  try {
    const approximate = loadApproximateIndex(file, source.features.dims, neighbourIndexOptions);
    if (approximate.size() !== rows || approximate.dimensions() !== source.features.dims) {
      return { reason: `${file} holds ${approximate.size()} × ${approximate.dimensions()}, not ${rows} × ${source.features.dims}; ${rebuild}` };
    }
    return { approximate };
  } catch (error) {
    return { reason: `${file} cannot be loaded (${(error as Error).message}); ${rebuild}` };
  }
}

/** How a neighbour query was answered. */
export type SearchMethod = 'exact' | 'approximate';

/**
 * The k rows nearest to `query` (L2-normalised), best first, without row `exclude`: through the HNSW index when
 * one is given, else the exact scan. HNSW candidates are over-fetched (the query's own row comes back too, and
 * 8-bit distances reorder near-ties) and re-ranked by their exact cosine, so the similarities shown are exact.
 */
export function searchNeighbours(features: Matrix, approximate: ApproximateIndex | undefined, query: Float32Array, k: number, exclude?: number): { hits: ScoredIndex[]; search: SearchMethod } {
  if (!approximate) return { hits: exactNearest(features, query, k, exclude), search: 'exact' };
  if (query.length !== features.dims) throw new EngineError('BAD_REQUEST', `A query of ${query.length} values cannot be searched among ${features.dims}-value features.`);
  const wanted = Math.min(features.rows, 2 * k + 1);
  const hits: ScoredIndex[] = [];
  for (const candidate of approximate.search(query, wanted)) {
    if (candidate.index === exclude || candidate.index < 0 || candidate.index >= features.rows) continue;
    const offset = candidate.index * features.dims;
    let similarity = 0;
    for (let d = 0; d < features.dims; d++) similarity += features.data[offset + d] * query[d];
    hits.push({ index: candidate.index, similarity });
  }
  hits.sort((a, b) => b.similarity - a.similarity);
  return { hits: hits.slice(0, k), search: 'approximate' };
}

/** Cosines of unit rows, with room for float32 rounding. */
const similarityBound = 1 + 1e-3;

/**
 * The run's saved k-NN graph (neighbours.bin), checked against the index it claims to come from: undefined when
 * there is none or it is stale (computed from another index.bin, or with fewer neighbours than `wanted`); BAD_RUN
 * naming the file and the field when it cannot be read or cannot be trusted (a shape that disagrees with the
 * index's rows, a neighbour outside [0, rows) other than the -1 of an empty slot, a similarity that is not a
 * cosine). The graph is derived data: a caller recomputes it (and overwrites the file) on BAD_RUN.
 */
export async function readNeighbourGraph(runDir: string, index: { header: { createdAt: string }; features: { rows: number } }, wanted: number): Promise<NeighbourGraph | undefined> {
  const file = runPath(runDir, 'neighbourGraph');
  if (!existsSync(file)) return undefined;
  const recompute = 'Delete it: it is computed again from index.bin';
  const bad = (field: string, problem: string) => runFileError(file, field, problem, recompute);
  let archive;
  try {
    archive = await readArchive<{ indexCreatedAt?: unknown; k?: unknown }>(file);
  } catch (error) {
    throw bad('the file', `cannot be read (${(error as Error).message})`);
  }
  const { header } = archive;
  if (typeof header !== 'object' || header === null) throw bad('the header', 'is not an object');
  if (header.indexCreatedAt !== index.header.createdAt) return undefined;
  const rows = index.features.rows;
  const k = header.k;
  if (!(Number.isInteger(k) && (k as number) >= 1 && (k as number) <= Math.max(1, rows - 1))) throw bad('"k"', `is ${JSON.stringify(k)}; it must be a whole number from 1 to ${Math.max(1, rows - 1)} (the index has ${rows} images)`);
  const size = k as number;
  if (size < wanted) return undefined;
  const array = (name: string) => {
    const entry = archive.arrays.get(name);
    if (!entry) throw bad(`array "${name}"`, 'is missing');
    const { shape, values } = entry;
    if (!(Array.isArray(shape) && shape.length === 2 && shape[0] === rows && shape[1] === size)) throw bad(`array "${name}"`, `has shape ${JSON.stringify(shape)}; the index's ${rows} images and k = ${size} need [${rows}, ${size}]`);
    if (values.length !== rows * size) throw bad(`array "${name}"`, `holds ${values.length} values, but its shape [${rows}, ${size}] needs ${rows * size}`);
    return values;
  };
  const indices = array('indices');
  const similarities = array('similarities');
  if (!(indices instanceof Int32Array)) throw bad('array "indices"', 'is not int32');
  if (!(similarities instanceof Float32Array)) throw bad('array "similarities"', 'is not float32');
  for (let i = 0; i < indices.length; i++) {
    const neighbour = indices[i];
    if (neighbour < -1 || neighbour >= rows) throw bad('array "indices"', `holds ${neighbour} at row ${Math.floor(i / size)}; a neighbour must be an image of the index, 0 to ${rows - 1} (or -1 for none)`);
    const similarity = similarities[i];
    if (!(Math.abs(similarity) <= similarityBound)) throw bad('array "similarities"', `holds ${similarity} at row ${Math.floor(i / size)}; a similarity must be a cosine, from -1 to 1`);
  }
  return { k: size, indices, similarities };
}
