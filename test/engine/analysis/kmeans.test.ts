import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kMeans } from '../../../src/engine/analysis/kmeans';
import { matrixFromRows } from '../../../src/engine/analysis/matrix';
import { clusteringAccuracy } from '../../../src/engine/analysis/metrics';
import { assertClose, gaussianBlobs } from './fixtures';

describe('kMeans', () => {
  it('recovers well-separated Gaussian blobs', () => {
    const { points, labels, centres } = gaussianBlobs(2000, 32, 8, { separation: 4, spread: 1, seed: 3 });
    const result = kMeans(points, 8, { seed: 1 });
    assert.equal(clusteringAccuracy(labels, result.assignments), 1);
    // Each centroid lands on a true centre, up to sampling noise (spread / √250 per dimension).
    for (let c = 0; c < 8; c++) {
      let nearest = Infinity;
      for (let t = 0; t < 8; t++) {
        let distance = 0;
        for (let d = 0; d < 32; d++) distance += (result.centroids.data[c * 32 + d] - centres.data[t * 32 + d]) ** 2;
        nearest = Math.min(nearest, distance);
      }
      assert.ok(Math.sqrt(nearest) < 0.6, `centroid ${c} is ${Math.sqrt(nearest)} from any true centre`);
    }
    // Inertia ≈ N · D · spread².
    assertClose(result.inertia / (2000 * 32), 1, 0.05);
  });

  it('reports the inertia of its own assignments and converges to member means', () => {
    const { points } = gaussianBlobs(500, 6, 3, { separation: 2, spread: 1, seed: 4 });
    const result = kMeans(points, 5, { seed: 2, tolerance: 0, maxIterations: 300 });
    let inertia = 0;
    const sums = new Float64Array(5 * 6);
    const sizes = new Float64Array(5);
    for (let i = 0; i < 500; i++) {
      const c = result.assignments[i];
      sizes[c]++;
      for (let d = 0; d < 6; d++) {
        inertia += (points.data[i * 6 + d] - result.centroids.data[c * 6 + d]) ** 2;
        sums[c * 6 + d] += points.data[i * 6 + d];
      }
    }
    assertClose(result.inertia, inertia, 1e-6 * inertia);
    assert.ok(result.iterations < 300, 'should converge before the iteration cap');
    for (let c = 0; c < 5; c++) {
      assert.ok(sizes[c] > 0);
      for (let d = 0; d < 6; d++) assertClose(result.centroids.data[c * 6 + d], sums[c * 6 + d] / sizes[c], 1e-5);
    }
  });

  it('is deterministic for a seed, and more restarts never do worse', () => {
    const { points } = gaussianBlobs(800, 10, 6, { separation: 1.5, spread: 1, seed: 5 });
    const first = kMeans(points, 6, { seed: 9 });
    const second = kMeans(points, 6, { seed: 9 });
    assert.deepEqual(first.assignments, second.assignments);
    assert.deepEqual(first.centroids.data, second.centroids.data);
    assert.equal(first.inertia, second.inertia);
    const single = kMeans(points, 6, { seed: 9, restarts: 1 });
    assert.ok(first.inertia <= single.inertia);
  });

  it('keeps every cluster non-empty when points repeat', () => {
    // Two distinct points, k = 3: seeding must duplicate a centre and the empty cluster has to be re-seeded.
    const points = matrixFromRows([...Array.from({ length: 10 }, () => [0, 0]), ...Array.from({ length: 10 }, () => [5, 5])]);
    const result = kMeans(points, 3, { seed: 1, restarts: 2 });
    const sizes = [0, 0, 0];
    for (const c of result.assignments) sizes[c]++;
    assert.ok(sizes.every((size) => size > 0), `sizes ${sizes}`);
    assert.equal(result.inertia, 0);
  });

  it('handles k = 1 and k = N, and rejects impossible k', () => {
    const points = matrixFromRows([[0], [2], [4]]);
    const one = kMeans(points, 1);
    assertClose(one.centroids.data[0], 2, 1e-6);
    assertClose(one.inertia, 8, 1e-6);
    const all = kMeans(points, 3);
    assert.equal(all.inertia, 0);
    assert.equal(new Set(all.assignments).size, 3);
    assert.throws(() => kMeans(points, 4));
    assert.throws(() => kMeans(points, 0));
  });
});
