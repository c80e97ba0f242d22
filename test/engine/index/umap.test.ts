// The layout's fast fuzzy graph against umap-js's own: the same entries and strengths, hence the same layout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UMAP } from 'umap-js';
import type { SparseMatrix } from 'umap-js/dist/matrix';
import { LayoutEpochs, referenceEpochs, seededRandom, umapWithNeighbours } from '../../../src/engine/index/umap';

/** A seeded k-NN list (self first at distance 0) over points on a few noisy rings, with some one-sided edges. */
function neighbourLists(rows: number, k: number): { knnIndices: number[][]; knnDistances: number[][] } {
  const random = seededRandom(42);
  const points = Array.from({ length: rows }, (_, i) => {
    const angle = (2 * Math.PI * i) / rows;
    const radius = 1 + (i % 3) + 0.2 * random();
    return [radius * Math.cos(angle), radius * Math.sin(angle)];
  });
  const knnIndices: number[][] = [];
  const knnDistances: number[][] = [];
  for (let i = 0; i < rows; i++) {
    const byDistance = points.map((point, j) => ({ j, d: Math.hypot(point[0] - points[i][0], point[1] - points[i][1]) })).sort((a, b) => a.d - b.d || a.j - b.j);
    const nearest = byDistance.filter((hit) => hit.j !== i).slice(0, k - 1);
    knnIndices.push([i, ...nearest.map((hit) => hit.j)]);
    knnDistances.push([0, ...nearest.map((hit) => hit.d)]);
  }
  return { knnIndices, knnDistances };
}

function entries(matrix: SparseMatrix): string[] {
  return matrix.getAll().map((entry) => `${entry.row}:${entry.col}=${entry.value}`);
}

test("the fuzzy neighbour graph equals umap-js's own, entry for entry", () => {
  const { knnIndices, knnDistances } = neighbourLists(300, 10);
  const stock = new UMAP({ nNeighbors: 10, random: seededRandom(1) });
  stock.setPrecomputedKNN(knnIndices, knnDistances);
  const X = Array.from({ length: 300 }, () => []);
  const expected = (stock as unknown as { fuzzySimplicialSet(X: unknown[], k: number): SparseMatrix }).fuzzySimplicialSet(X, 10);
  const fast = umapWithNeighbours(knnIndices, knnDistances, { neighbours: 10, minDistance: 0.1, epochs: 10, seed: 1 });
  const actual = (fast as unknown as { fuzzySimplicialSet(X: unknown[], k: number): SparseMatrix }).fuzzySimplicialSet(X, 10);
  assert.ok(expected.getAll().length > 300 * 9, 'one-sided edges are mirrored');
  assert.deepEqual(entries(actual), entries(expected));
});

test('the layout (typed-array epochs) is the one stock umap-js gives for the same neighbours and seed', () => {
  const { knnIndices, knnDistances } = neighbourLists(200, 8);
  const X = Array.from({ length: 200 }, () => []);
  const stock = new UMAP({ nNeighbors: 8, minDist: 0.1, nEpochs: 30, random: seededRandom(3) });
  stock.setPrecomputedKNN(knnIndices, knnDistances);
  const expected = stock.fit(X);
  const fast = umapWithNeighbours(knnIndices, knnDistances, { neighbours: 8, minDistance: 0.1, epochs: 30, seed: 3 });
  fast.initializeFit(X);
  const epochs = new LayoutEpochs(fast);
  while (epochs.step() < 30);
  assert.deepEqual(epochs.coordinates(), Float32Array.from(expected.flat()));
});

test("epochs follow umap-learn's rule: 500 up to 10,000 points, 200 above", () => {
  assert.equal(referenceEpochs(2_000), 500);
  assert.equal(referenceEpochs(10_000), 500);
  assert.equal(referenceEpochs(70_000), 200);
});
