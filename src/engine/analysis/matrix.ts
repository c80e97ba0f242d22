// Dense row-major matrices on Float32Array, and the one heavy primitive the analysis needs: left · rightᵀ.

/** N × D values, row-major: row i is data[i * dims .. (i + 1) * dims). */
export interface Matrix {
  data: Float32Array;
  rows: number;
  dims: number;
}

export function createMatrix(rows: number, dims: number): Matrix {
  return { data: new Float32Array(rows * dims), rows, dims };
}

export function matrixFromRows(values: ArrayLike<number>[], dims?: number): Matrix {
  const width = dims ?? (values.length > 0 ? values[0].length : 0);
  const matrix = createMatrix(values.length, width);
  values.forEach((row, index) => {
    if (row.length !== width) throw new Error(`Row ${index} has ${row.length} values, expected ${width}.`);
    matrix.data.set(row, index * width);
  });
  return matrix;
}

export function assertMatrix(matrix: Matrix, name = 'matrix'): void {
  if (matrix.data.length !== matrix.rows * matrix.dims) {
    throw new Error(`${name} holds ${matrix.data.length} values but claims ${matrix.rows} × ${matrix.dims}.`);
  }
}

/** A view, not a copy. */
export function getRow(matrix: Matrix, row: number): Float32Array {
  return matrix.data.subarray(row * matrix.dims, (row + 1) * matrix.dims);
}

export function selectRows(matrix: Matrix, indices: ArrayLike<number>): Matrix {
  const selected = createMatrix(indices.length, matrix.dims);
  for (let i = 0; i < indices.length; i++) selected.data.set(getRow(matrix, indices[i]), i * matrix.dims);
  return selected;
}

export function transposeMatrix(matrix: Matrix): Matrix {
  const { rows, dims, data } = matrix;
  const transposed = createMatrix(dims, rows);
  const out = transposed.data;
  // Square tiles keep both reads and writes inside the cache.
  const tile = 32;
  for (let row0 = 0; row0 < rows; row0 += tile) {
    const row1 = Math.min(rows, row0 + tile);
    for (let column0 = 0; column0 < dims; column0 += tile) {
      const column1 = Math.min(dims, column0 + tile);
      for (let row = row0; row < row1; row++) {
        for (let column = column0; column < column1; column++) out[column * rows + row] = data[row * dims + column];
      }
    }
  }
  return transposed;
}

/** Squared Euclidean norm of every row, in double precision. */
export function rowSquaredNorms(matrix: Matrix): Float64Array {
  const { rows, dims, data } = matrix;
  const norms = new Float64Array(rows);
  for (let row = 0; row < rows; row++) {
    let sum = 0;
    for (let offset = row * dims, end = offset + dims; offset < end; offset++) sum += data[offset] * data[offset];
    norms[row] = sum;
  }
  return norms;
}

/** A copy with every row scaled to unit length; all-zero rows stay zero. */
export function l2NormalizeRows(matrix: Matrix, epsilon = 1e-12): Matrix {
  const normalized = { data: new Float32Array(matrix.data), rows: matrix.rows, dims: matrix.dims };
  const norms = rowSquaredNorms(matrix);
  for (let row = 0; row < matrix.rows; row++) {
    const scale = 1 / Math.max(Math.sqrt(norms[row]), epsilon);
    for (let offset = row * matrix.dims, end = offset + matrix.dims; offset < end; offset++) normalized.data[offset] *= scale;
  }
  return normalized;
}

export function dot(left: ArrayLike<number>, leftOffset: number, right: ArrayLike<number>, rightOffset: number, length: number): number {
  let sum0 = 0;
  let sum1 = 0;
  let sum2 = 0;
  let sum3 = 0;
  let t = 0;
  // Four accumulators break the add dependency chain, which is what limits a plain loop.
  for (; t + 4 <= length; t += 4) {
    sum0 += left[leftOffset + t] * right[rightOffset + t];
    sum1 += left[leftOffset + t + 1] * right[rightOffset + t + 1];
    sum2 += left[leftOffset + t + 2] * right[rightOffset + t + 2];
    sum3 += left[leftOffset + t + 3] * right[rightOffset + t + 3];
  }
  for (; t < length; t++) sum0 += left[leftOffset + t] * right[rightOffset + t];
  return sum0 + sum1 + sum2 + sum3;
}

// ---------------------------------------------------------------- left · rightᵀ

/** left · rightᵀ as a left.rows × right.rows row-major array: tiled over right rows and the shared dimension, 4 × 2 dot products per inner loop. */
export function multiplyTransposed(left: Matrix, right: Matrix): Float32Array {
  assertMatrix(left, 'left');
  assertMatrix(right, 'right');
  if (left.dims !== right.dims) throw new Error(`Cannot multiply ${left.dims}-wide rows by ${right.dims}-wide rows.`);
  const leftRows = left.rows;
  const rightRows = right.rows;
  const dims = left.dims;
  const a = left.data;
  const b = right.data;
  const out = new Float32Array(leftRows * rightRows);
  const depthTile = 512;
  // Partial sums across shared-dimension tiles stay in doubles, so long rows (PCA's N) keep their precision.
  const sums = dims > depthTile ? new Float64Array(leftRows * rightRows) : undefined;
  const target = sums ?? out;
  // A tile of right rows stays in cache while every left row streams past it.
  const rightTile = 64;
  for (let depth0 = 0; depth0 < dims; depth0 += depthTile) {
    const depth1 = Math.min(dims, depth0 + depthTile);
    for (let j0 = 0; j0 < rightRows; j0 += rightTile) {
      const j1 = Math.min(rightRows, j0 + rightTile);
      let i = 0;
      // Eight independent accumulators: each loaded value feeds two or four products, and no add waits on another.
      for (; i + 4 <= leftRows; i += 4) {
        const a0 = i * dims;
        const a1 = a0 + dims;
        const a2 = a1 + dims;
        const a3 = a2 + dims;
        for (let j = j0; j < j1; j += 2) {
          const b0 = j * dims;
          // An odd last row is paired with itself and its duplicate result dropped.
          const b1 = j + 1 < j1 ? b0 + dims : b0;
          let s00 = 0;
          let s01 = 0;
          let s10 = 0;
          let s11 = 0;
          let s20 = 0;
          let s21 = 0;
          let s30 = 0;
          let s31 = 0;
          for (let t = depth0; t < depth1; t++) {
            const y0 = b[b0 + t];
            const y1 = b[b1 + t];
            const x0 = a[a0 + t];
            const x1 = a[a1 + t];
            const x2 = a[a2 + t];
            const x3 = a[a3 + t];
            s00 += x0 * y0;
            s01 += x0 * y1;
            s10 += x1 * y0;
            s11 += x1 * y1;
            s20 += x2 * y0;
            s21 += x2 * y1;
            s30 += x3 * y0;
            s31 += x3 * y1;
          }
          const o0 = i * rightRows + j;
          target[o0] += s00;
          target[o0 + rightRows] += s10;
          target[o0 + 2 * rightRows] += s20;
          target[o0 + 3 * rightRows] += s30;
          if (j + 1 < j1) {
            target[o0 + 1] += s01;
            target[o0 + rightRows + 1] += s11;
            target[o0 + 2 * rightRows + 1] += s21;
            target[o0 + 3 * rightRows + 1] += s31;
          }
        }
      }
      for (; i < leftRows; i++) {
        for (let j = j0; j < j1; j++) {
          target[i * rightRows + j] += dot(a, i * dims + depth0, b, j * dims + depth0, depth1 - depth0);
        }
      }
    }
  }
  if (sums !== undefined) out.set(sums);
  return out;
}
