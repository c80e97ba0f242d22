// Nearest neighbours at scale through usearch (SIMD kernels, HNSW), loaded at run time; the JS scans in
// neighbours.ts answer when its native module is missing. Every vector here is L2-normalised, so inner product = cosine.
import type { NeighbourGraph } from '../analysis/curation';
import type { Matrix } from '../analysis/matrix';
import { throwIfCancelled, yieldToEventLoop, type JobContext } from '../jobContext';
import { loadNative } from '../nativeModules';
import { topKCosine, topKCosineBatch, type ScoredIndex } from './neighbours';

type Usearch = typeof import('usearch');
let loaded: Usearch | null | undefined;

/** usearch, or null (with the reason kept for the log) when its prebuilt binary does not load on this machine. */
export function loadUsearch(): Usearch | null {
  if (loaded !== undefined) return loaded;
  try {
    loaded = loadNative<Usearch>('usearch');
  } catch (error) {
    unavailableReason = (error as Error).message;
    loaded = null;
  }
  return loaded;
}
export let unavailableReason = '';

/**
 * usearch's native side reads a typed array from the start of its buffer, ignoring byteOffset (measured: a
 * subarray of rows 500–501 searched as rows 0–1), so views are copied before they cross.
 */
function packed(values: Float32Array): Float32Array {
  return values.byteOffset === 0 && values.byteLength === values.buffer.byteLength ? values : values.slice();
}


const graphChunkRows = 2048;

/**
 * Exact k-nearest-neighbour graph over the rows of `features`, a chunk of queries at a time (progress and
 * cancellation between chunks). Exact on purpose: near-duplicates and outlier scores must not depend on a
 * randomised structure, and the graph is computed once per index and kept in the run folder.
 */
export async function exactNeighbourGraph(features: Matrix, k: number, context: JobContext, fractionRange: [number, number] = [0, 1]): Promise<NeighbourGraph> {
  const rows = features.rows;
  const size = Math.max(1, Math.min(Math.floor(k), rows - 1));
  const indices = new Int32Array(rows * size).fill(-1);
  const similarities = new Float32Array(rows * size);
  const usearch = loadUsearch();
  if (!usearch) context.log('info', `usearch is unavailable (${unavailableReason}); the neighbour graph uses the JS scan.`);
  const dataset = usearch ? packed(features.data) : features.data;
  for (let start = 0; start < rows; start += graphChunkRows) {
    throwIfCancelled(context.signal);
    const end = Math.min(rows, start + graphChunkRows);
    const queries = { data: features.data.subarray(start * features.dims, end * features.dims), rows: end - start, dims: features.dims };
    if (usearch) {
      // One extra neighbour: the row itself comes back among its own nearest.
      const found = usearch.exactSearch(dataset, packed(queries.data), features.dims, size + 1, usearch.MetricKind.IP, 0) as import('usearch').BatchMatches;
      const wanted = size + 1;
      for (let q = 0; q < queries.rows; q++) {
        const row = start + q;
        let kept = 0;
        for (let j = 0; j < wanted && kept < size; j++) {
          const neighbour = Number(found.keys[q * wanted + j]);
          if (neighbour === row || j >= found.counts[q]) continue;
          indices[row * size + kept] = neighbour;
          // usearch's "ip" distance is 1 − inner product.
          similarities[row * size + kept] = 1 - found.distances[q * wanted + j];
          kept++;
        }
      }
    } else {
      const exclude = Int32Array.from({ length: queries.rows }, (_, q) => start + q);
      topKCosineBatch(features, queries, size, exclude).forEach((hits, q) =>
        hits.forEach((hit, j) => {
          indices[(start + q) * size + j] = hit.index;
          similarities[(start + q) * size + j] = hit.similarity;
        }),
      );
    }
    context.progress({ phase: 'index', fraction: fractionRange[0] + (fractionRange[1] - fractionRange[0]) * (end / rows), message: `Nearest neighbours ${end}/${rows}` });
    await yieldToEventLoop();
  }
  return { k: size, indices, similarities };
}

/** One query's k nearest rows, best first: usearch's exact SIMD scan when it loads, else the JS scan. */
export function exactNearest(features: Matrix, query: Float32Array, k: number, exclude?: number): ScoredIndex[] {
  const usearch = loadUsearch();
  if (!usearch) return topKCosine(features, query, k, exclude);
  const wanted = Math.min(features.rows, k + (exclude === undefined ? 0 : 1));
  const found = usearch.exactSearch(packed(features.data), packed(query), features.dims, wanted, usearch.MetricKind.IP, 1) as import('usearch').Matches;
  const hits: ScoredIndex[] = [];
  for (let j = 0; j < found.keys.length && hits.length < k; j++) {
    const index = Number(found.keys[j]);
    if (index !== exclude) hits.push({ index, similarity: 1 - found.distances[j] });
  }
  return hits;
}

/** An approximate index (HNSW) for collections where even a SIMD scan is too slow per query. */
export interface ApproximateIndex {
  /** The k nearest rows by the index's (8-bit) distances, best first. */
  search(query: Float32Array, k: number): ScoredIndex[];
  size(): number;
  dimensions(): number;
  /** Writes the index to `file` (usearch's own format). */
  save(file: string): void;
}

export interface ApproximateIndexOptions {
  /** How vectors are stored and compared: 8-bit (default; a quarter of f32's memory) or 16-bit floats. */
  quantization?: 'i8' | 'f16';
  connectivity?: number;
  expansionAdd?: number;
  expansionSearch?: number;
  threads?: number;
}

/** Rows added per call: the gap between progress reports and cancellation checks (~3 s at 1M rows on 2 cores). */
const buildChunkRows = 8192;

function newUsearchIndex(usearch: Usearch, dims: number, options: ApproximateIndexOptions) {
  return new usearch.Index({
    dimensions: dims,
    // i8 with the cosine metric: usearch scales i8 distances for cos, not for a raw inner product.
    metric: usearch.MetricKind.Cos,
    quantization: options.quantization === 'f16' ? usearch.ScalarKind.F16 : usearch.ScalarKind.I8,
    connectivity: options.connectivity ?? 12,
    expansion_add: options.expansionAdd ?? 40,
    expansion_search: options.expansionSearch ?? 64,
    multi: false,
  });
}

function wrap(index: import('usearch').Index): ApproximateIndex {
  return {
    search(query, k) {
      const found = index.search(packed(query), k, 1) as import('usearch').Matches;
      return Array.from(found.keys, (key, j) => ({ index: Number(key), similarity: 1 - found.distances[j] }));
    },
    size: () => index.size(),
    dimensions: () => index.dimensions(),
    save: (file) => index.save(file),
  };
}

/**
 * HNSW over 8-bit quantised vectors: at 1M × 128 the scan reads 512 MB per query, HNSW a few thousand vectors.
 * Parameters measured in scripts/bench/scale.ts (recall against the exact scan is printed there). Rows are added a
 * chunk at a time, with progress and cancellation between chunks; row i gets key i.
 */
export async function buildApproximateIndex(
  features: Matrix,
  context: JobContext,
  fractionRange: [number, number] = [0, 1],
  options: ApproximateIndexOptions = {},
): Promise<ApproximateIndex> {
  const usearch = loadUsearch();
  if (!usearch) throw new Error(`usearch is unavailable: ${unavailableReason}`);
  const index = newUsearchIndex(usearch, features.dims, options);
  const span = fractionRange[1] - fractionRange[0];
  for (let start = 0; start < features.rows; start += buildChunkRows) {
    throwIfCancelled(context.signal);
    const end = Math.min(features.rows, start + buildChunkRows);
    const keys = new BigUint64Array(end - start);
    for (let row = start; row < end; row++) keys[row - start] = BigInt(row);
    index.add(keys, features.data.slice(start * features.dims, end * features.dims), options.threads ?? 0);
    context.progress({ phase: 'index', fraction: fractionRange[0] + span * (end / features.rows), message: `Building the neighbour index ${end}/${features.rows}` });
    await yieldToEventLoop();
  }
  throwIfCancelled(context.signal);
  return wrap(index);
}

/**
 * Reads an index written by ApproximateIndex.save. usearch trusts the file: a damaged one can abort the process
 * (measured: junk bytes end in std::bad_alloc), so callers check the file's hash first.
 */
export function loadApproximateIndex(file: string, dims: number, options: Pick<ApproximateIndexOptions, 'expansionSearch' | 'quantization'> = {}): ApproximateIndex {
  const usearch = loadUsearch();
  if (!usearch) throw new Error(`usearch is unavailable: ${unavailableReason}`);
  const index = newUsearchIndex(usearch, dims, options);
  index.load(file);
  return wrap(index);
}

/**
 * The k-nearest-neighbour graph through HNSW: build, then one batch search. Exact scans cost N² (measured: the
 * 70k × 64 graph took over 5 minutes on 2 cores); this takes seconds, at some recall (see scripts/bench/scale.ts).
 */
export async function approximateNeighbourGraph(features: Matrix, k: number, context: JobContext, fractionRange: [number, number] = [0, 1]): Promise<NeighbourGraph> {
  const usearch = loadUsearch();
  if (!usearch) return exactNeighbourGraph(features, k, context, fractionRange);
  const rows = features.rows;
  const size = Math.max(1, Math.min(Math.floor(k), rows - 1));
  context.progress({ phase: 'index', fraction: fractionRange[0], message: `Building a neighbour index over ${rows} images` });
  await yieldToEventLoop();
  const index = new usearch.Index({ dimensions: features.dims, metric: usearch.MetricKind.Cos, quantization: usearch.ScalarKind.F32, connectivity: 16, expansion_add: 128, expansion_search: 128, multi: false });
  const keys = new BigUint64Array(rows);
  for (let row = 0; row < rows; row++) keys[row] = BigInt(row);
  index.add(keys, packed(features.data), 0);
  throwIfCancelled(context.signal);
  const span = fractionRange[1] - fractionRange[0];
  const indices = new Int32Array(rows * size).fill(-1);
  const similarities = new Float32Array(rows * size);
  const wanted = size + 1;
  for (let start = 0; start < rows; start += graphChunkRows) {
    const end = Math.min(rows, start + graphChunkRows);
    const found = index.search(features.data.slice(start * features.dims, end * features.dims), wanted, 0) as import('usearch').BatchMatches;
    for (let q = 0; q < end - start; q++) {
      const row = start + q;
      let kept = 0;
      for (let j = 0; j < found.counts[q] && kept < size; j++) {
        const neighbour = Number(found.keys[q * wanted + j]);
        if (neighbour === row) continue;
        indices[row * size + kept] = neighbour;
        similarities[row * size + kept] = 1 - found.distances[q * wanted + j];
        kept++;
      }
    }
    throwIfCancelled(context.signal);
    context.progress({ phase: 'index', fraction: fractionRange[0] + span * (0.3 + (0.7 * end) / rows), message: `Nearest neighbours ${end}/${rows}` });
    await yieldToEventLoop();
  }
  return { k: size, indices, similarities };
}
