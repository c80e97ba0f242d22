import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  l2NormalizeRows,
  matrixFromRows,
  multiplyTransposed,
  rowSquaredNorms,
  selectRows,
  transposeMatrix,
} from '../../../src/engine/analysis/matrix';
import { assertClose, randomMatrix } from './fixtures';

describe('matrix helpers', () => {
  it('normalises rows to unit length and leaves zero rows at zero', () => {
    const normalized = l2NormalizeRows(matrixFromRows([[3, 4], [0, 0], [-2, 0]]));
    assert.deepEqual(Array.from(normalized.data), [0.6000000238418579, 0.800000011920929, 0, 0, -1, 0]);
    assertClose(rowSquaredNorms(normalized)[0], 1, 1e-6);
  });

  it('transposes and selects rows', () => {
    const matrix = randomMatrix(37, 45, 1);
    const transposed = transposeMatrix(matrix);
    assert.equal(transposed.rows, 45);
    for (const [i, d] of [[0, 0], [36, 44], [5, 33]]) assert.equal(transposed.data[d * 37 + i], matrix.data[i * 45 + d]);
    assert.deepEqual(Array.from(selectRows(matrix, [2, 0]).data.subarray(0, 45)), Array.from(matrix.data.subarray(90, 135)));
  });

  it('multiplies by a transpose like the definition, for odd shapes and long rows', () => {
    // Shapes hit every remainder path; 700 columns crosses the 512-wide depth tile.
    for (const [leftRows, rightRows, dims] of [[1, 1, 1], [7, 3, 5], [4, 65, 9], [9, 130, 700]]) {
      const left = randomMatrix(leftRows, dims, leftRows);
      const right = randomMatrix(rightRows, dims, rightRows + 100);
      const product = multiplyTransposed(left, right);
      for (let i = 0; i < leftRows; i++) {
        for (let j = 0; j < rightRows; j++) {
          let expected = 0;
          for (let d = 0; d < dims; d++) expected += left.data[i * dims + d] * right.data[j * dims + d];
          assertClose(product[i * rightRows + j], expected, 1e-4 * (1 + Math.abs(expected)), `(${i}, ${j})`);
        }
      }
      assert.deepEqual(multiplyTransposed(left, right), product);
    }
  });
});
