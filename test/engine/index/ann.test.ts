import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMatrix, l2NormalizeRows } from '../../../src/engine/analysis/matrix';
import { silentContext } from '../../../src/engine/jobContext';
import { approximateNeighbourGraph, exactNearest, exactNeighbourGraph } from '../../../src/engine/index/ann';
import { topKCosine } from '../../../src/engine/index/neighbours';
import { requirements, skipUnless } from '../../requirements';

const usearchSkip = skipUnless(requirements.usearch);

function randomRows(rows: number, dims: number): ReturnType<typeof createMatrix> {
  const matrix = createMatrix(rows, dims);
  let state = 7;
  for (let i = 0; i < matrix.data.length; i++) matrix.data[i] = ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 4294967296) - 0.5;
  return l2NormalizeRows(matrix);
}

test('neighbour graph: equals the JS scan for every row, across several chunks of queries', { skip: usearchSkip }, async () => {
  // 5,000 rows: three chunks of 2,048 queries, so the later chunks are views into the middle of the buffer.
  const features = randomRows(5000, 16);
  const graph = await exactNeighbourGraph(features, 5, silentContext());
  for (const row of [0, 2047, 2048, 4500, 4999]) {
    const expected = topKCosine(features, features.data.slice(row * 16, (row + 1) * 16), 5, row);
    assert.deepEqual(Array.from(graph.indices.subarray(row * 5, row * 5 + 5)), expected.map((hit) => hit.index), `row ${row}`);
    expected.forEach((hit, j) => assert.ok(Math.abs(graph.similarities[row * 5 + j] - hit.similarity) < 1e-5));
  }
});

test('one query: a query that is a view into the middle of the features finds the same rows as the JS scan', () => {
  const features = randomRows(3000, 16);
  const query = features.data.subarray(1700 * 16, 1701 * 16);
  assert.deepEqual(
    exactNearest(features, query, 4, 1700).map((hit) => hit.index),
    topKCosine(features, query, 4, 1700).map((hit) => hit.index),
  );
});

test('approximate neighbour graph (HNSW, for large runs): most of each row\'s exact neighbours, never the row itself', { skip: usearchSkip }, async () => {
  const features = randomRows(3000, 16);
  const exact = await exactNeighbourGraph(features, 10, silentContext());
  const approximate = await approximateNeighbourGraph(features, 10, silentContext());
  let shared = 0;
  for (let row = 0; row < 3000; row++) {
    const truth = new Set(exact.indices.subarray(row * 10, row * 10 + 10));
    const found = Array.from(approximate.indices.subarray(row * 10, row * 10 + 10));
    assert.ok(!found.includes(row), `row ${row} is not its own neighbour`);
    shared += found.filter((index) => truth.has(index)).length;
  }
  assert.ok(shared / 30_000 > 0.9, `recall@10 ${shared / 30_000}`);
});
