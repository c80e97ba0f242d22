// Nearest neighbours by cosine similarity over L2-normalised embeddings: one pass, a k-sized heap, no full sort.

import { assertMatrix, dot, Matrix, multiplyTransposed } from '../analysis/matrix';
import { createTopKHeaps, offerTopK, ScoredIndex, sortedTopK, topKThreshold } from '../analysis/topK';

export type { ScoredIndex } from '../analysis/topK';

/** The k rows most similar to `query`, best first; `exclude` (usually the query's own row) is skipped. */
export function topKCosine(embeddings: Matrix, query: Float32Array, k: number, exclude?: number): ScoredIndex[] {
  assertMatrix(embeddings, 'embeddings');
  const { rows, dims, data } = embeddings;
  if (query.length !== dims) throw new Error(`The query has ${query.length} values but embeddings have ${dims}.`);
  const heaps = createTopKHeaps(1, Math.min(Math.max(0, Math.floor(k)), rows));
  let threshold = -Infinity;
  const offer = (row: number, similarity: number): void => {
    if (similarity < threshold || row === exclude) return;
    offerTopK(heaps, 0, similarity, row);
    threshold = topKThreshold(heaps, 0);
  };
  let row = 0;
  // Four rows per pass load each query value once for four products.
  for (; row + 4 <= rows; row += 4) {
    const o0 = row * dims;
    const o1 = o0 + dims;
    const o2 = o1 + dims;
    const o3 = o2 + dims;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let t = 0; t < dims; t++) {
      const value = query[t];
      s0 += value * data[o0 + t];
      s1 += value * data[o1 + t];
      s2 += value * data[o2 + t];
      s3 += value * data[o3 + t];
    }
    offer(row, s0);
    offer(row + 1, s1);
    offer(row + 2, s2);
    offer(row + 3, s3);
  }
  for (; row < rows; row++) offer(row, dot(query, 0, data, row * dims, dims));
  return sortedTopK(heaps, 0);
}

// Keeps one block of similarities near 32 MB whatever the number of embeddings.
const blockValueBudget = 8 * 1024 * 1024;

/**
 * topKCosine for every row of `queries`, one similarity block at a time.
 * `exclude[q]`, when given and ≥ 0, is skipped for query q (e.g. the query's own row).
 */
export function topKCosineBatch(embeddings: Matrix, queries: Matrix, k: number, exclude?: ArrayLike<number>): ScoredIndex[][] {
  assertMatrix(embeddings, 'embeddings');
  assertMatrix(queries, 'queries');
  if (queries.dims !== embeddings.dims) throw new Error(`Queries have ${queries.dims} values but embeddings have ${embeddings.dims}.`);
  if (exclude !== undefined && exclude.length !== queries.rows) throw new Error('Give one exclude index per query.');
  const rows = embeddings.rows;
  const heaps = createTopKHeaps(queries.rows, Math.min(Math.max(0, Math.floor(k)), rows));
  if (rows === 0 || queries.rows === 0) return Array.from({ length: queries.rows }, () => []);
  const blockRows = Math.max(1, Math.min(queries.rows, Math.floor(blockValueBudget / rows)));
  for (let start = 0; start < queries.rows; start += blockRows) {
    const end = Math.min(queries.rows, start + blockRows);
    const block = { data: queries.data.subarray(start * queries.dims, end * queries.dims), rows: end - start, dims: queries.dims };
    const similarities = multiplyTransposed(block, embeddings);
    for (let q = start; q < end; q++) {
      const skip = exclude === undefined ? -1 : exclude[q];
      const base = (q - start) * rows;
      let threshold = -Infinity;
      for (let row = 0; row < rows; row++) {
        const similarity = similarities[base + row];
        if (similarity < threshold || row === skip) continue;
        offerTopK(heaps, q, similarity, row);
        threshold = topKThreshold(heaps, q);
      }
    }
  }
  return Array.from({ length: queries.rows }, (_, q) => sortedTopK(heaps, q));
}
