// Many bounded min-heaps in flat typed arrays: keeps the k best (similarity, index) pairs per row without sorting everything.

export interface TopKHeaps {
  k: number;
  similarities: Float64Array;
  indices: Int32Array;
  sizes: Int32Array;
}

export interface ScoredIndex {
  index: number;
  similarity: number;
}

export function createTopKHeaps(rows: number, k: number): TopKHeaps {
  const size = Math.max(0, Math.floor(k));
  return {
    k: size,
    similarities: new Float64Array(rows * size),
    indices: new Int32Array(rows * size),
    sizes: new Int32Array(rows),
  };
}

// Ties go to the lower index, so the result does not depend on the order candidates arrive in.
function worse(similarityA: number, indexA: number, similarityB: number, indexB: number): boolean {
  return similarityA < similarityB || (similarityA === similarityB && indexA > indexB);
}

/** Offers one candidate to a row's heap; the root is always the worst of the kept candidates. */
export function offerTopK(heaps: TopKHeaps, row: number, similarity: number, index: number): void {
  const { k, similarities, indices, sizes } = heaps;
  if (k === 0) return;
  const base = row * k;
  const size = sizes[row];
  if (size < k) {
    // Sift up from the new leaf.
    let child = size;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!worse(similarity, index, similarities[base + parent], indices[base + parent])) break;
      similarities[base + child] = similarities[base + parent];
      indices[base + child] = indices[base + parent];
      child = parent;
    }
    similarities[base + child] = similarity;
    indices[base + child] = index;
    sizes[row] = size + 1;
    return;
  }
  if (!worse(similarities[base], indices[base], similarity, index)) return;
  // Replace the root and sift down.
  let parent = 0;
  for (;;) {
    const left = 2 * parent + 1;
    if (left >= k) break;
    let child = left;
    const right = left + 1;
    if (right < k && worse(similarities[base + right], indices[base + right], similarities[base + left], indices[base + left])) {
      child = right;
    }
    if (!worse(similarities[base + child], indices[base + child], similarity, index)) break;
    similarities[base + parent] = similarities[base + child];
    indices[base + parent] = indices[base + child];
    parent = child;
  }
  similarities[base + parent] = similarity;
  indices[base + parent] = index;
}

/** The lowest similarity a candidate must beat to enter a full heap, or -Infinity while it has room. */
export function topKThreshold(heaps: TopKHeaps, row: number): number {
  return heaps.sizes[row] < heaps.k ? -Infinity : heaps.similarities[row * heaps.k];
}

/** A row's kept candidates, best first. */
export function sortedTopK(heaps: TopKHeaps, row: number): ScoredIndex[] {
  const base = row * heaps.k;
  const result: ScoredIndex[] = [];
  for (let slot = 0; slot < heaps.sizes[row]; slot++) {
    result.push({ index: heaps.indices[base + slot], similarity: heaps.similarities[base + slot] });
  }
  return result.sort((a, b) => b.similarity - a.similarity || a.index - b.index);
}
