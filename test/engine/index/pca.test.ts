import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMatrix, Matrix } from '../../../src/engine/analysis/matrix';
import { jacobiEigen, pca, topEigenvectors } from '../../../src/engine/index/pca';
import { createRandom } from '../../../src/engine/util/random';
import { assertClose, randomMatrix } from '../analysis/fixtures';

/** Sample covariance in double precision, straight from the definition. */
function covarianceOf(points: Matrix): Float64Array {
  const { rows, dims, data } = points;
  const mean = new Float64Array(dims);
  for (let i = 0; i < rows; i++) for (let d = 0; d < dims; d++) mean[d] += data[i * dims + d] / rows;
  const covariance = new Float64Array(dims * dims);
  for (let i = 0; i < rows; i++) {
    for (let a = 0; a < dims; a++) {
      for (let b = 0; b < dims; b++) covariance[a * dims + b] += ((data[i * dims + a] - mean[a]) * (data[i * dims + b] - mean[b])) / (rows - 1);
    }
  }
  return covariance;
}

/** Points with a decaying spectrum, mixed by a random matrix so that no axis is special. */
function anisotropic(rows: number, dims: number, seed: number): Matrix {
  const latent = randomMatrix(rows, dims, seed);
  const mixing = randomMatrix(dims, dims, seed + 1);
  const points = createMatrix(rows, dims);
  for (let i = 0; i < rows; i++) {
    for (let d = 0; d < dims; d++) {
      let sum = 3;
      for (let l = 0; l < dims; l++) sum += (latent.data[i * dims + l] / (1 + l)) * mixing.data[l * dims + d];
      points.data[i * dims + d] = sum;
    }
  }
  return points;
}

function cosine(a: ArrayLike<number>, aOffset: number, b: ArrayLike<number>, bOffset: number, dims: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let d = 0; d < dims; d++) {
    ab += a[aOffset + d] * b[bOffset + d];
    aa += a[aOffset + d] ** 2;
    bb += b[bOffset + d] ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

describe('pca', () => {
  it('recovers a dominant direction and its share of the variance', () => {
    const dims = 20;
    const random = createRandom(8);
    const direction = Float64Array.from({ length: dims }, () => random.normal());
    const length = Math.hypot(...direction);
    direction.forEach((value, d) => (direction[d] = value / length));
    const points = createMatrix(5000, dims);
    for (let i = 0; i < 5000; i++) {
      const along = 5 * random.normal();
      for (let d = 0; d < dims; d++) points.data[i * dims + d] = 1 + along * direction[d] + 0.5 * random.normal();
    }
    const result = pca(points, 2);
    assert.ok(Math.abs(cosine(result.components.data, 0, direction, 0, dims)) > 0.999);
    // Variance 25 along the direction, 0.25 in each of 20 dimensions: 25.25 / 30.
    assertClose(result.explainedVarianceRatio[0], 25.25 / 30, 0.02);
    assertClose(result.explainedVarianceRatio[1], 0.25 / 30, 0.003);
    for (let d = 0; d < dims; d++) assertClose(result.mean[d], 1, 0.2);
  });

  it('matches a full eigen-decomposition of the covariance, through the subspace iteration', () => {
    const points = anisotropic(3000, 48, 21);
    const covariance = covarianceOf(points);
    const reference = jacobiEigen(covariance, 48);
    let total = 0;
    for (let d = 0; d < 48; d++) total += covariance[d * 48 + d];
    const result = pca(points, 3);
    for (let c = 0; c < 3; c++) {
      assertClose(result.explainedVarianceRatio[c], reference.values[c] / total, 1e-4 * (reference.values[c] / total));
      assert.ok(Math.abs(cosine(result.components.data, c * 48, reference.vectors, c * 48, 48)) > 0.9999, `component ${c}`);
    }
  });

  it('returns orthonormal components with reproducible signs and the matching projection', () => {
    const points = anisotropic(400, 10, 31);
    const result = pca(points, 4);
    const { dims } = points;
    for (let a = 0; a < 4; a++) {
      for (let b = 0; b < 4; b++) {
        let product = 0;
        for (let d = 0; d < dims; d++) product += result.components.data[a * dims + d] * result.components.data[b * dims + d];
        assertClose(product, a === b ? 1 : 0, 1e-5);
      }
      const row = Array.from(result.components.data.subarray(a * dims, (a + 1) * dims));
      const largest = row.reduce((best, value) => (Math.abs(value) > Math.abs(best) ? value : best), 0);
      assert.ok(largest > 0, 'largest loading should be positive');
    }
    for (const i of [0, 17, 399]) {
      for (let c = 0; c < 4; c++) {
        let expected = 0;
        for (let d = 0; d < dims; d++) expected += (points.data[i * dims + d] - result.mean[d]) * result.components.data[c * dims + d];
        assertClose(result.projected.data[i * 4 + c], expected, 1e-4 * (1 + Math.abs(expected)));
      }
    }
    const ratios = result.explainedVarianceRatio;
    assert.ok(ratios.every((ratio, c) => c === 0 || ratio <= ratios[c - 1]));
    assert.deepEqual(pca(points, 4).components.data, result.components.data);
  });

  it('finds eigenpairs of a matrix with a near-degenerate top pair', () => {
    // Eigenvalues 10, 9.99, 1, 0.5, ... in a random orthonormal basis.
    const dims = 40;
    const basis = randomMatrix(dims, dims, 41);
    const q = new Float64Array(basis.data);
    for (let r = 0; r < dims; r++) {
      for (let p = 0; p < r; p++) {
        let projection = 0;
        for (let d = 0; d < dims; d++) projection += q[r * dims + d] * q[p * dims + d];
        for (let d = 0; d < dims; d++) q[r * dims + d] -= projection * q[p * dims + d];
      }
      const norm = Math.hypot(...q.subarray(r * dims, (r + 1) * dims));
      for (let d = 0; d < dims; d++) q[r * dims + d] /= norm;
    }
    const values = Array.from({ length: dims }, (_, i) => (i === 0 ? 10 : i === 1 ? 9.99 : 1 / i));
    const matrix = new Float64Array(dims * dims);
    for (let i = 0; i < dims; i++) {
      for (let j = 0; j < dims; j++) {
        let sum = 0;
        for (let l = 0; l < dims; l++) sum += values[l] * q[l * dims + i] * q[l * dims + j];
        matrix[i * dims + j] = sum;
      }
    }
    const result = topEigenvectors(matrix, dims, 2);
    assertClose(result.values[0], 10, 1e-8);
    assertClose(result.values[1], 9.99, 1e-8);
    assert.ok(Math.abs(cosine(result.vectors, 0, q, 0, dims)) > 1 - 1e-8);
    assert.ok(Math.abs(cosine(result.vectors, dims, q, dims, dims)) > 1 - 1e-8);
  });

  it('rejects impossible component counts', () => {
    assert.throws(() => pca(randomMatrix(5, 3, 1), 4));
    assert.throws(() => pca(randomMatrix(5, 3, 1), 0));
  });
});
