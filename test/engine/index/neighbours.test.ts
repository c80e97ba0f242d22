import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getRow, l2NormalizeRows, Matrix, matrixFromRows, selectRows } from '../../../src/engine/analysis/matrix';
import { topKCosine, topKCosineBatch } from '../../../src/engine/index/neighbours';
import { assertClose, randomMatrix } from '../analysis/fixtures';

function bruteForce(embeddings: Matrix, query: ArrayLike<number>, k: number, exclude = -1): { index: number; similarity: number }[] {
  const scored: { index: number; similarity: number }[] = [];
  for (let i = 0; i < embeddings.rows; i++) {
    if (i === exclude) continue;
    let similarity = 0;
    for (let d = 0; d < embeddings.dims; d++) similarity += query[d] * embeddings.data[i * embeddings.dims + d];
    scored.push({ index: i, similarity });
  }
  return scored.sort((a, b) => b.similarity - a.similarity || a.index - b.index).slice(0, k);
}

function assertSameNeighbours(actual: { index: number; similarity: number }[], expected: { index: number; similarity: number }[]): void {
  assert.deepEqual(
    actual.map((entry) => entry.index),
    expected.map((entry) => entry.index),
  );
  actual.forEach((entry, i) => assertClose(entry.similarity, expected[i].similarity, 1e-5));
}

describe('topKCosine', () => {
  const embeddings = l2NormalizeRows(randomMatrix(3001, 13, 3));

  it('equals a brute-force sort on random data', () => {
    for (const [queryRow, k] of [[0, 1], [5, 10], [3000, 37], [1234, 3001]] as const) {
      const query = getRow(embeddings, queryRow);
      const result = topKCosine(embeddings, query, k);
      assertSameNeighbours(result, bruteForce(embeddings, query, k));
      assert.equal(result[0].index, queryRow, 'a row is its own nearest neighbour');
      assertClose(result[0].similarity, 1, 1e-6);
    }
  });

  it('skips the excluded row', () => {
    const query = getRow(embeddings, 42);
    const result = topKCosine(embeddings, query, 15, 42);
    assert.equal(result.length, 15);
    assert.ok(result.every((entry) => entry.index !== 42));
    assertSameNeighbours(result, bruteForce(embeddings, query, 15, 42));
    assert.equal(topKCosine(embeddings, query, 5000, 42).length, 3000);
  });

  it('breaks ties by the lower index and handles k = 0', () => {
    const tied = matrixFromRows([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1]]);
    assert.deepEqual(
      topKCosine(tied, Float32Array.of(1, 0), 2).map((entry) => entry.index),
      [0, 2],
    );
    assert.deepEqual(topKCosine(tied, Float32Array.of(1, 0), 0), []);
  });
});

describe('topKCosineBatch', () => {
  it('equals topKCosine for every query, with per-query exclusions', () => {
    const embeddings = l2NormalizeRows(randomMatrix(2000, 24, 5));
    const rows = [0, 1, 2, 999, 1500, 1999, 7];
    const queries = selectRows(embeddings, rows);
    const batch = topKCosineBatch(embeddings, queries, 12, rows);
    assert.equal(batch.length, rows.length);
    rows.forEach((row, q) => assertSameNeighbours(batch[q], bruteForce(embeddings, getRow(embeddings, row), 12, row)));
    const unexcluded = topKCosineBatch(embeddings, queries, 3);
    rows.forEach((row, q) => assert.equal(unexcluded[q][0].index, row));
  });
});
