import assert from 'node:assert/strict';
import { test } from 'node:test';
import { candidatePairs, duplicateGroups, mirroredPixelAgreement, outlierScores, pixelCorrelation } from '../../../src/engine/analysis/curation';
import type { NeighbourGraph } from '../../../src/engine/analysis/curation';

/** A graph from explicit neighbour lists, best first. */
function graph(rows: [number, number][][]): NeighbourGraph {
  const k = Math.max(...rows.map((row) => row.length));
  const indices = new Int32Array(rows.length * k).fill(-1);
  const similarities = new Float32Array(rows.length * k);
  rows.forEach((row, r) => row.forEach(([index, similarity], j) => ((indices[r * k + j] = index), (similarities[r * k + j] = similarity))));
  return { k, indices, similarities };
}

test('duplicate groups: pairs at or above the threshold join as stars (no chains), exact hashes join whatever the features say', () => {
  const neighbours = graph([
    [[1, 0.99], [2, 0.5]],
    [[0, 0.99], [2, 0.985]],
    [[1, 0.985], [0, 0.5]],
    [[4, 0.97], [0, 0.1]],
    [[3, 0.97], [0, 0.1]],
    [[0, 0.2], [1, 0.1]],
  ]);
  const pairs = candidatePairs(neighbours, 0.98);
  assert.deepEqual(pairs.map((pair) => [pair.a, pair.b]), [[0, 1], [1, 2]], 'each pair once');
  const groups = duplicateGroups(6, pairs);
  // 0≈1 and 1≈2, but 0 and 2 are not alike: 2 does not join through 1.
  assert.deepEqual(groups.map((group) => group.members), [[0, 1]]);
  assert.equal(groups[0].exact, false);
  assert.ok(Math.abs(groups[0].minSimilarity - 0.99) < 1e-6);
  // A star: every member alike the first.
  assert.deepEqual(duplicateGroups(4, [{ a: 1, b: 3, similarity: 0.99 }, { a: 1, b: 2, similarity: 0.985 }]).map((group) => [group.members, group.minSimilarity]), [[[1, 2, 3], 0.985]]);
  // 3 and 4 are under the threshold, but 4 and 5 have the same bytes.
  const withHashes = duplicateGroups(6, pairs, ['a', 'b', 'c', 'd', 'e', 'e']);
  assert.deepEqual(withHashes.map((group) => [group.members, group.exact]), [[[0, 1], false], [[4, 5], true]]);
  assert.deepEqual(duplicateGroups(6, candidatePairs(neighbours, 0.999)).length, 0);
  // Another similarity (e.g. of raw features) can decide instead of the graph's own.
  assert.deepEqual(candidatePairs(neighbours, 0.98, (a, b) => (a === 3 && b === 4 ? 1 : 0)).map((pair) => [pair.a, pair.b]), [[3, 4]]);
});

test('pixel agreement: a mirrored copy agrees fully, an unrelated pattern does not', () => {
  const side = 4;
  const image = Uint8Array.from({ length: 16 }, (_, i) => (i % 4) * 60 + Math.floor(i / 4) * 5);
  const mirrored = Uint8Array.from({ length: 16 }, (_, i) => image[Math.floor(i / 4) * 4 + (3 - (i % 4))]);
  assert.ok(pixelCorrelation(image, mirrored) < 0);
  assert.ok(Math.abs(mirroredPixelAgreement(image, mirrored, side) - 1) < 1e-9);
  const other = Uint8Array.from({ length: 16 }, (_, i) => ((i * 7) % 5) * 40);
  assert.ok(mirroredPixelAgreement(image, other, side) < 0.9);
  assert.equal(pixelCorrelation(image, new Uint8Array(16).fill(9)), 0);
});

test('outlier scores: one minus the similarity to the k-th neighbour', () => {
  const neighbours = graph([
    [[1, 0.9], [2, 0.8]],
    [[0, 0.9], [2, 0.7]],
    [[0, 0.3], [1, 0.2]],
  ]);
  const scores = outlierScores(neighbours, 2);
  assert.deepEqual(Array.from(scores, (score) => Number(score.toFixed(4))), [0.2, 0.3, 0.8]);
  assert.deepEqual(Array.from(outlierScores(neighbours, 1), (score) => Number(score.toFixed(4))), [0.1, 0.1, 0.7]);
  // k past the graph's width uses its last column.
  assert.deepEqual(Array.from(outlierScores(neighbours, 50)), Array.from(scores));
});
