// The same analysis on the tfjs wasm backend: results agree with the JS path and no tensor is left behind.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { kMeans } from '../../../src/engine/analysis/kmeans';
import { l2NormalizeRows, multiplyTransposed, multiplyTransposedJs, usesTensorBackend } from '../../../src/engine/analysis/matrix';
import { clusteringAccuracy, knnAccuracy } from '../../../src/engine/analysis/metrics';
import { topKCosine, topKCosineBatch } from '../../../src/engine/index/neighbours';
import { pca } from '../../../src/engine/index/pca';
import { assertClose, gaussianBlobs, randomMatrix } from './fixtures';

describe('analysis on the wasm backend', () => {
  before(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  });

  it('multiplies like the JS kernel without leaking tensors', () => {
    const before = tf.memory().numTensors;
    const left = randomMatrix(33, 70, 1);
    const right = randomMatrix(129, 70, 2);
    assert.ok(usesTensorBackend());
    // A view into the middle of a larger buffer, as the blocked callers pass.
    const view = { data: left.data.subarray(5 * 70, 30 * 70), rows: 25, dims: 70 };
    for (const block of [left, view]) {
      const fast = multiplyTransposed(block, right);
      const reference = multiplyTransposedJs(block, right);
      assert.equal(fast.length, reference.length);
      for (let i = 0; i < reference.length; i++) assertClose(fast[i], reference[i], 1e-4 * (1 + Math.abs(reference[i])));
    }
    assert.equal(tf.memory().numTensors, before);
  });

  it('runs k-means, kNN, neighbours and PCA with the same answers and no leaks', () => {
    const before = tf.memory().numTensors;
    const { points, labels } = gaussianBlobs(1500, 32, 6, { separation: 3, spread: 1, seed: 7 });
    const clustering = kMeans(points, 6, { seed: 3 });
    assert.equal(clusteringAccuracy(labels, clustering.assignments), 1);
    assert.deepEqual(kMeans(points, 6, { seed: 3 }).assignments, clustering.assignments);

    const embeddings = l2NormalizeRows(points);
    assert.equal(knnAccuracy(embeddings, labels, 20, 0.07), 1);

    const queries = { data: embeddings.data.subarray(0, 5 * 32), rows: 5, dims: 32 };
    const batch = topKCosineBatch(embeddings, queries, 8, [0, 1, 2, 3, 4]);
    for (let q = 0; q < 5; q++) {
      const single = topKCosine(embeddings, embeddings.data.subarray(q * 32, (q + 1) * 32), 8, q);
      assert.deepEqual(
        batch[q].map((entry) => entry.index),
        single.map((entry) => entry.index),
      );
    }

    const projection = pca(points, 2);
    const total = projection.explainedVarianceRatio[0] + projection.explainedVarianceRatio[1];
    assert.ok(total > 0.3 && total < 1, `explained variance ${total}`);
    assert.equal(tf.memory().numTensors, before);
  });
});
