// Generated test data: seeded Gaussian blobs and random matrices.

import { createMatrix, Matrix } from '../../../src/engine/analysis/matrix';
import { createRandom } from '../../../src/engine/util/random';

export interface Blobs {
  points: Matrix;
  labels: Int32Array;
  centres: Matrix;
}

/** `clusters` centres drawn from N(0, separation²), points around them with unit-free `spread`; labels cycle 0..clusters-1. */
export function gaussianBlobs(count: number, dims: number, clusters: number, options: { separation?: number; spread?: number; seed?: number } = {}): Blobs {
  const random = createRandom(options.seed ?? 1);
  const separation = options.separation ?? 10;
  const spread = options.spread ?? 1;
  const centres = createMatrix(clusters, dims);
  for (let i = 0; i < centres.data.length; i++) centres.data[i] = separation * random.normal();
  const points = createMatrix(count, dims);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % clusters;
    labels[i] = label;
    for (let d = 0; d < dims; d++) points.data[i * dims + d] = centres.data[label * dims + d] + spread * random.normal();
  }
  return { points, labels, centres };
}

export function randomMatrix(rows: number, dims: number, seed: number): Matrix {
  const random = createRandom(seed);
  const matrix = createMatrix(rows, dims);
  for (let i = 0; i < matrix.data.length; i++) matrix.data[i] = random.normal();
  return matrix;
}

export function assertClose(actual: number, expected: number, tolerance: number, message = ''): void {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new Error(`${message} expected ${expected} ± ${tolerance}, got ${actual}`);
  }
}
