import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { linearSumAssignment } from '../../../src/engine/analysis/hungarian';
import { createRandom } from '../../../src/engine/util/random';
import { assertClose } from './fixtures';

/** Smallest total over every injective map from the shorter side to the longer one. */
function bruteForceMinimum(cost: number[][]): number {
  const rows = cost.length;
  const columns = cost[0].length;
  const transposed = rows > columns;
  const short = transposed ? columns : rows;
  const long = transposed ? rows : columns;
  const at = (i: number, j: number) => (transposed ? cost[j][i] : cost[i][j]);
  let best = Infinity;
  const used = new Array<boolean>(long).fill(false);
  const search = (i: number, total: number): void => {
    if (i === short) {
      best = Math.min(best, total);
      return;
    }
    for (let j = 0; j < long; j++) {
      if (used[j]) continue;
      used[j] = true;
      search(i + 1, total + at(i, j));
      used[j] = false;
    }
  };
  search(0, 0);
  return best;
}

describe('linearSumAssignment', () => {
  it('finds the brute-force optimum on random square and rectangular matrices', () => {
    const random = createRandom(11);
    for (let trial = 0; trial < 200; trial++) {
      const rows = 1 + random.int(6);
      const columns = 1 + random.int(6);
      // Small integer costs make ties common, which is where an assignment solver tends to slip.
      const cost = Array.from({ length: rows }, () => Array.from({ length: columns }, () => random.int(10) - 3));
      const { rows: matchedRows, cols: matchedColumns } = linearSumAssignment(cost);
      assert.equal(matchedRows.length, Math.min(rows, columns));
      assert.equal(new Set(matchedRows).size, matchedRows.length);
      assert.equal(new Set(matchedColumns).size, matchedColumns.length);
      assert.deepEqual(matchedRows, [...matchedRows].sort((a, b) => a - b));
      const total = matchedRows.reduce((sum, row, p) => sum + cost[row][matchedColumns[p]], 0);
      assert.equal(total, bruteForceMinimum(cost), `trial ${trial}: ${JSON.stringify(cost)}`);
    }
  });

  it('matches scipy on a real-valued 3 × 5 case', () => {
    const cost = [
      [0.253, 0.249, 0.188, 0.567, 0.039],
      [0.59, 0.166, 0.678, 0.021, 0.311],
      [0.938, 0.538, 0.812, 0.658, 0.611],
    ];
    const result = linearSumAssignment(cost);
    assert.deepEqual(result, { rows: [0, 1, 2], cols: [4, 3, 1] });
    assertClose(result.rows.reduce((sum, row, p) => sum + cost[row][result.cols[p]], 0), 0.598, 1e-12);
  });

  it('handles tall matrices and empty input', () => {
    assert.deepEqual(linearSumAssignment([[5], [1], [3]]), { rows: [1], cols: [0] });
    assert.deepEqual(linearSumAssignment([]), { rows: [], cols: [] });
    assert.throws(() => linearSumAssignment([[1, Infinity]]));
  });
});
