// Dataset curation over the neighbour graph: near-duplicate groups and outlier scores. Plain functions of arrays.

/** The k nearest rows of every row (itself excluded), best first: N × k indices and cosine similarities. */
export interface NeighbourGraph {
  k: number;
  indices: Int32Array;
  similarities: Float32Array;
}

export interface SimilarPair {
  a: number;
  b: number;
  similarity: number;
}

export interface DuplicateGroup {
  /** Image indices, lowest first. */
  members: number[];
  /** Every member has the same file bytes. */
  exact: boolean;
  /** The lowest similarity along the links that joined the group (1 for exact copies). */
  minSimilarity: number;
}

/**
 * Pairs (row, neighbour) of the graph, each once, whose similarity by `similarity(row, neighbour)` (default: the
 * graph's own) is at least `threshold`.
 */
export function candidatePairs(graph: NeighbourGraph, threshold: number, similarity?: (a: number, b: number) => number): SimilarPair[] {
  const rows = graph.indices.length / graph.k;
  const seen = new Set<number>();
  const pairs: SimilarPair[] = [];
  for (let row = 0; row < rows; row++) {
    for (let j = 0; j < graph.k; j++) {
      const neighbour = graph.indices[row * graph.k + j];
      if (neighbour < 0) continue;
      const [a, b] = row < neighbour ? [row, neighbour] : [neighbour, row];
      const key = a * rows + b;
      if (seen.has(key)) continue;
      const value = similarity ? similarity(a, b) : graph.similarities[row * graph.k + j];
      if (value >= threshold) {
        seen.add(key);
        pairs.push({ a, b, similarity: value });
      }
    }
  }
  return pairs;
}

/**
 * Groups of near-identical images: first every set of identical bytes (`hashes`, one per image), then, for each
 * image not yet grouped (in index order), that image and its similar pairs not yet grouped. Groups are stars
 * around their first image, never chains: a chain of look-alikes (A≈B≈C…) would otherwise join images that
 * share nothing (measured: one 854-image group of different trousers on Fashion-MNIST).
 */
export function duplicateGroups(rows: number, pairs: readonly SimilarPair[], hashes?: readonly string[]): DuplicateGroup[] {
  const grouped = new Uint8Array(rows);
  const groups: DuplicateGroup[] = [];
  if (hashes) {
    const byHash = new Map<string, number[]>();
    hashes.forEach((hash, row) => (byHash.get(hash) ?? byHash.set(hash, []).get(hash)!).push(row));
    for (const members of byHash.values()) {
      if (members.length < 2) continue;
      members.forEach((member) => (grouped[member] = 1));
      groups.push({ members, exact: true, minSimilarity: 1 });
    }
  }
  const linked = new Map<number, { other: number; similarity: number }[]>();
  for (const { a, b, similarity } of pairs) {
    (linked.get(a) ?? linked.set(a, []).get(a)!).push({ other: b, similarity });
    (linked.get(b) ?? linked.set(b, []).get(b)!).push({ other: a, similarity });
  }
  for (let row = 0; row < rows; row++) {
    if (grouped[row] || !linked.has(row)) continue;
    const partners = linked.get(row)!.filter((link) => !grouped[link.other]);
    if (partners.length === 0) continue;
    grouped[row] = 1;
    partners.forEach((link) => (grouped[link.other] = 1));
    groups.push({
      members: [row, ...partners.map((link) => link.other)].sort((x, y) => x - y),
      exact: false,
      minSimilarity: Math.min(...partners.map((link) => link.similarity)),
    });
  }
  return groups.sort((a, b) => b.members.length - a.members.length || a.members[0] - b.members[0]);
}

/** Pearson correlation of two equal-length pixel arrays (0 when either is flat). */
export function pixelCorrelation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let sumA = 0;
  let sumB = 0;
  for (let i = 0; i < n; i++) {
    sumA += a[i];
    sumB += b[i];
  }
  const [meanA, meanB] = [sumA / n, sumB / n];
  let cross = 0;
  let squaresA = 0;
  let squaresB = 0;
  for (let i = 0; i < n; i++) {
    const [da, db] = [a[i] - meanA, b[i] - meanB];
    cross += da * db;
    squaresA += da * da;
    squaresB += db * db;
  }
  return squaresA > 0 && squaresB > 0 ? cross / Math.sqrt(squaresA * squaresB) : 0;
}

/** The better pixel correlation of two square grey thumbnails, as they are and with `b` mirrored left to right. */
export function mirroredPixelAgreement(a: Uint8Array, b: Uint8Array, sidePx: number): number {
  const mirrored = new Uint8Array(b.length);
  for (let y = 0; y < sidePx; y++) for (let x = 0; x < sidePx; x++) mirrored[y * sidePx + x] = b[y * sidePx + (sidePx - 1 - x)];
  return Math.max(pixelCorrelation(a, b), pixelCorrelation(a, mirrored));
}

/** Each image's outlier score: 1 − cosine similarity to its k-th nearest neighbour (higher: more alone). */
export function outlierScores(graph: NeighbourGraph, k: number): Float32Array {
  const rows = graph.indices.length / graph.k;
  const column = Math.min(graph.k, Math.max(1, Math.floor(k))) - 1;
  const scores = new Float32Array(rows);
  for (let row = 0; row < rows; row++) scores[row] = 1 - graph.similarities[row * graph.k + column];
  return scores;
}
