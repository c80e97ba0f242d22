// Principal components of embeddings, for the cluster map: covariance, then subspace iteration with Rayleigh–Ritz.

import { assertMatrix, createMatrix, Matrix, multiplyTransposed, transposeMatrix } from '../analysis/matrix';

export interface PcaResult {
  /** N × components: the centred points in component coordinates. */
  projected: Matrix;
  /** components × D, unit rows, strongest first. */
  components: Matrix;
  /** Share of the total variance along each component. */
  explainedVarianceRatio: number[];
  mean: Float32Array;
}

export function pca(points: Matrix, components = 2): PcaResult {
  assertMatrix(points, 'points');
  const { rows, dims } = points;
  const count = Math.floor(components);
  if (count < 1 || count > dims) throw new Error(`PCA needs 1 ≤ components ≤ ${dims}, got ${components}.`);
  if (rows === 0) throw new Error('PCA needs at least one point.');

  const mean = columnMeans(points);
  const centred = createMatrix(rows, dims);
  for (let row = 0; row < rows; row++) {
    for (let d = 0, offset = row * dims; d < dims; d++, offset++) centred.data[offset] = points.data[offset] - mean[d];
  }
  // Covariance = Xcᵀ Xc / (N − 1); the product takes rows, so both sides are the transpose.
  const centredTransposed = transposeMatrix(centred);
  const covariance = Float64Array.from(multiplyTransposed(centredTransposed, centredTransposed));
  const scale = 1 / Math.max(1, rows - 1);
  for (let index = 0; index < covariance.length; index++) covariance[index] *= scale;
  // Rounding leaves the float32 product slightly asymmetric; iteration assumes symmetry.
  for (let i = 0; i < dims; i++) {
    for (let j = i + 1; j < dims; j++) {
      const average = (covariance[i * dims + j] + covariance[j * dims + i]) / 2;
      covariance[i * dims + j] = covariance[j * dims + i] = average;
    }
  }
  let totalVariance = 0;
  for (let d = 0; d < dims; d++) totalVariance += covariance[d * dims + d];

  const { vectors, values } = topEigenvectors(covariance, dims, count);
  const componentMatrix = createMatrix(count, dims);
  for (let c = 0; c < count; c++) {
    // Flip each vector so its largest-magnitude loading is positive, making the signs reproducible.
    let largest = 0;
    for (let d = 1; d < dims; d++) if (Math.abs(vectors[c * dims + d]) > Math.abs(vectors[c * dims + largest])) largest = d;
    const sign = vectors[c * dims + largest] < 0 ? -1 : 1;
    for (let d = 0; d < dims; d++) componentMatrix.data[c * dims + d] = sign * vectors[c * dims + d];
  }

  const projected = createMatrix(rows, count);
  for (let row = 0; row < rows; row++) {
    for (let c = 0; c < count; c++) {
      let sum = 0;
      for (let d = 0; d < dims; d++) sum += centred.data[row * dims + d] * componentMatrix.data[c * dims + d];
      projected.data[row * count + c] = sum;
    }
  }
  const explainedVarianceRatio = values.map((value) => (totalVariance > 0 ? Math.max(0, value) / totalVariance : 0));
  return { projected, components: componentMatrix, explainedVarianceRatio, mean };
}

function columnMeans(points: Matrix): Float32Array {
  const sums = new Float64Array(points.dims);
  for (let row = 0; row < points.rows; row++) {
    for (let d = 0, offset = row * points.dims; d < points.dims; d++, offset++) sums[d] += points.data[offset];
  }
  return Float32Array.from(sums, (sum) => sum / points.rows);
}

/**
 * The `count` largest eigenpairs of a symmetric dims × dims matrix, as rows of `vectors`.
 * Subspace iteration on a few extra vectors converges at the rate λ(block + 1) / λ(count), so oversampling makes close eigenvalues cheap.
 */
export function topEigenvectors(matrix: Float64Array, dims: number, count: number): { vectors: Float64Array; values: number[] } {
  const block = Math.min(dims, Math.max(2 * count, count + 8));
  if (block === dims) {
    // The whole spectrum is as cheap as a block: diagonalise directly.
    const { vectors, values } = jacobiEigen(Float64Array.from(matrix), dims);
    return { vectors: vectors.slice(0, count * dims), values: values.slice(0, count) };
  }
  // Deterministic start: a fixed pseudo-random basis (a pattern of ±1 and small integers avoids hitting a null space).
  let basis = new Float64Array(block * dims);
  for (let b = 0; b < block; b++) {
    for (let d = 0; d < dims; d++) basis[b * dims + d] = Math.sin(1 + 12.9898 * (b + 1) + 78.233 * (d + 1)) + (d % (b + 2) === 0 ? 1 : 0);
  }
  orthonormalizeRows(basis, block, dims);
  let values: number[] = [];
  let previous: number[] = [];
  const maxIterations = 500;
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    const image = multiplyRowsBySymmetric(basis, block, matrix, dims);
    // Rayleigh–Ritz: diagonalise the small projected matrix Q A Qᵀ and rotate the basis onto its eigenvectors.
    const projectedMatrix = new Float64Array(block * block);
    for (let i = 0; i < block; i++) {
      for (let j = i; j < block; j++) {
        let sum = 0;
        for (let d = 0; d < dims; d++) sum += basis[i * dims + d] * image[j * dims + d];
        projectedMatrix[i * block + j] = projectedMatrix[j * block + i] = sum;
      }
    }
    const ritz = jacobiEigen(projectedMatrix, block);
    values = ritz.values;
    const rotated = new Float64Array(block * dims);
    for (let b = 0; b < block; b++) {
      for (let j = 0; j < block; j++) {
        const weight = ritz.vectors[b * block + j];
        if (weight === 0) continue;
        for (let d = 0; d < dims; d++) rotated[b * dims + d] += weight * image[j * dims + d];
      }
    }
    orthonormalizeRows(rotated, block, dims);
    basis = rotated;
    const scaleOfValues = Math.max(Math.abs(values[0]), 1e-300);
    const settled = previous.length > 0 && values.slice(0, count).every((value, c) => Math.abs(value - previous[c]) <= 1e-10 * scaleOfValues);
    if (settled) break;
    previous = values;
  }
  // The basis now spans A's image; recompute Ritz values on it so values and vectors agree.
  const image = multiplyRowsBySymmetric(basis, count, matrix, dims);
  const finalValues: number[] = [];
  for (let c = 0; c < count; c++) {
    let sum = 0;
    for (let d = 0; d < dims; d++) sum += basis[c * dims + d] * image[c * dims + d];
    finalValues.push(sum);
  }
  return { vectors: basis.slice(0, count * dims), values: finalValues };
}

function multiplyRowsBySymmetric(rows: Float64Array, count: number, matrix: Float64Array, dims: number): Float64Array {
  const out = new Float64Array(count * dims);
  for (let r = 0; r < count; r++) {
    const base = r * dims;
    for (let i = 0; i < dims; i++) {
      const weight = rows[base + i];
      if (weight === 0) continue;
      const matrixRow = i * dims;
      for (let d = 0; d < dims; d++) out[base + d] += weight * matrix[matrixRow + d];
    }
  }
  return out;
}

/** Modified Gram–Schmidt, twice, for a numerically orthonormal set of rows. */
function orthonormalizeRows(rows: Float64Array, count: number, dims: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let r = 0; r < count; r++) {
      const base = r * dims;
      for (let q = 0; q < r; q++) {
        let projection = 0;
        for (let d = 0; d < dims; d++) projection += rows[base + d] * rows[q * dims + d];
        for (let d = 0; d < dims; d++) rows[base + d] -= projection * rows[q * dims + d];
      }
      let norm = 0;
      for (let d = 0; d < dims; d++) norm += rows[base + d] * rows[base + d];
      norm = Math.sqrt(norm);
      if (norm < 1e-300) {
        // A vector lost to rank deficiency is replaced by a unit axis, orthogonalised on the next pass.
        rows.fill(0, base, base + dims);
        rows[base + (r % dims)] = 1;
        continue;
      }
      for (let d = 0; d < dims; d++) rows[base + d] /= norm;
    }
  }
}

/** Cyclic Jacobi for a small symmetric matrix: eigenvectors as rows, sorted by eigenvalue, largest first. */
export function jacobiEigen(matrix: Float64Array, size: number): { vectors: Float64Array; values: number[] } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(size * size);
  for (let i = 0; i < size; i++) v[i * size + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let offDiagonal = 0;
    let diagonal = 0;
    for (let i = 0; i < size; i++) {
      diagonal += a[i * size + i] ** 2;
      for (let j = i + 1; j < size; j++) offDiagonal += a[i * size + j] ** 2;
    }
    if (offDiagonal <= 1e-30 * Math.max(diagonal, 1e-300)) break;
    for (let p = 0; p < size; p++) {
      for (let q = p + 1; q < size; q++) {
        const apq = a[p * size + q];
        if (apq === 0) continue;
        // The rotation angle that zeroes a[p][q] (Numerical Recipes' stable form).
        const theta = (a[q * size + q] - a[p * size + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < size; k++) {
          const akp = a[k * size + p];
          const akq = a[k * size + q];
          a[k * size + p] = c * akp - s * akq;
          a[k * size + q] = s * akp + c * akq;
        }
        for (let k = 0; k < size; k++) {
          const apk = a[p * size + k];
          const aqk = a[q * size + k];
          a[p * size + k] = c * apk - s * aqk;
          a[q * size + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < size; k++) {
          const vpk = v[p * size + k];
          const vqk = v[q * size + k];
          v[p * size + k] = c * vpk - s * vqk;
          v[q * size + k] = s * vpk + c * vqk;
        }
      }
    }
  }
  const order = Array.from({ length: size }, (_, i) => i).sort((x, y) => a[y * size + y] - a[x * size + x]);
  const vectors = new Float64Array(size * size);
  order.forEach((from, to) => vectors.set(v.subarray(from * size, (from + 1) * size), to * size));
  return { vectors, values: order.map((i) => a[i * size + i]) };
}
