import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { l2NormalizeRows } from '../../../src/engine/analysis/matrix';
import { adjustedRandIndex, clusteringAccuracy, knnAccuracy, knnNeighboursFor, normalizedMutualInformation } from '../../../src/engine/analysis/metrics';
import { createRandom } from '../../../src/engine/util/random';
import { assertClose, gaussianBlobs, randomMatrix } from './fixtures';

// Reference values from scikit-learn 1.2.1 (normalized_mutual_info_score, adjusted_rand_score) and
// scipy's linear_sum_assignment on the contingency matrix for accuracy.
const referenceFixtures = [
  {
    labels: [2, 1, 2, 2, 1, 2, 2, 0, 0, 0, 0, 2, 2, 0, 1, 2, 0, 2, 0, 1, 2, 0, 1, 0],
    clusters: [0, 1, 2, 2, 1, 2, 2, 0, 2, 1, 0, 1, 2, 0, 1, 2, 0, 2, 0, 3, 3, 0, 1, 2],
    nmi: 0.39865862815241604,
    ari: 0.3267871661767465,
    acc: 0.7083333333333334,
  },
  {
    labels: [2, 2, 2, 3, 2, 1, 2, 2, 0, 0, 2, 1, 2, 1, 0, 0, 1, 3, 1, 1, 2, 3, 1, 2, 1, 2, 1, 2, 2, 2],
    clusters: [1, 2, 0, 0, 0, 1, 2, 2, 2, 0, 2, 1, 2, 1, 0, 0, 1, 1, 1, 1, 2, 0, 1, 2, 0, 2, 1, 0, 2, 2],
    nmi: 0.4308218038507172,
    ari: 0.4009443242179815,
    acc: 0.7,
  },
  {
    labels: [4, 1, 4, 2, 2, 3, 3, 4, 4, 0, 2, 4, 1, 0, 2, 3, 3, 4, 3, 0, 4, 2, 4, 4, 4, 0, 4, 3, 2, 3, 4, 2, 0, 3, 1, 1, 0, 0, 4, 1],
    clusters: [0, 2, 4, 2, 0, 0, 3, 4, 4, 0, 2, 4, 1, 0, 2, 3, 3, 4, 1, 0, 4, 2, 3, 4, 4, 0, 4, 3, 0, 2, 3, 4, 4, 3, 1, 1, 0, 0, 4, 1],
    nmi: 0.5251072573867818,
    ari: 0.4152625351882828,
    acc: 0.725,
  },
];

describe('clustering metrics', () => {
  it('match scikit-learn on random fixtures', () => {
    for (const fixture of referenceFixtures) {
      assertClose(normalizedMutualInformation(fixture.labels, fixture.clusters), fixture.nmi, 1e-12, 'nmi');
      assertClose(adjustedRandIndex(fixture.labels, fixture.clusters), fixture.ari, 1e-12, 'ari');
      assertClose(clusteringAccuracy(fixture.labels, fixture.clusters), fixture.acc, 1e-12, 'acc');
    }
  });

  it('match the scikit-learn documentation examples', () => {
    assertClose(adjustedRandIndex([0, 0, 1, 2], [0, 0, 1, 1]), 0.5714285714285715, 1e-12);
    assertClose(adjustedRandIndex([0, 0, 1, 1], [0, 1, 0, 1]), -0.5, 1e-12);
    assertClose(normalizedMutualInformation([0, 0, 1, 1], [0, 0, 1, 1]), 1, 1e-12);
    assertClose(normalizedMutualInformation([0, 0, 1, 1], [0, 1, 0, 1]), 0, 1e-12);
  });

  it('score a perfect but permuted clustering as 1', () => {
    const labels = [0, 0, 1, 1, 2, 2, 3, 3];
    const clusters = [7, 7, 3, 3, 5, 5, 1, 1];
    assert.equal(normalizedMutualInformation(labels, clusters), 1);
    assert.equal(adjustedRandIndex(labels, clusters), 1);
    assert.equal(clusteringAccuracy(labels, clusters), 1);
  });

  it('score independent assignments near 0', () => {
    const random = createRandom(3);
    const labels = Array.from({ length: 20000 }, () => random.int(5));
    const clusters = Array.from({ length: 20000 }, () => random.int(5));
    assertClose(normalizedMutualInformation(labels, clusters), 0, 2e-3);
    assertClose(adjustedRandIndex(labels, clusters), 0, 2e-3);
    // Matching still finds a little more than chance (1/5) among random clusters.
    assertClose(clusteringAccuracy(labels, clusters), 0.2, 0.02);
  });

  it('count unmatched clusters as wrong when there are more clusters than labels', () => {
    // Label 0 maps to cluster 0 (3 right), label 1 to cluster 2 (2 right); cluster 1 is left over.
    assertClose(clusteringAccuracy([0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 2, 2, 1]), 5 / 7, 1e-12);
    // Fewer clusters than labels: only one label can be matched.
    assertClose(clusteringAccuracy([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 0]), 2 / 6, 1e-12);
  });

  it('ignore unlabeled entries', () => {
    const { labels, clusters, nmi, ari, acc } = referenceFixtures[0];
    const paddedLabels = [-1, ...labels, -1, -1];
    const paddedClusters = [3, ...clusters, 0, 9];
    assertClose(normalizedMutualInformation(paddedLabels, paddedClusters), nmi, 1e-12);
    assertClose(adjustedRandIndex(paddedLabels, paddedClusters), ari, 1e-12);
    assertClose(clusteringAccuracy(paddedLabels, paddedClusters), acc, 1e-12);
  });

  it('treat a single unsplit cluster against a single label as perfect', () => {
    assert.equal(normalizedMutualInformation([1, 1, 1], [4, 4, 4]), 1);
    assert.equal(adjustedRandIndex([1, 1, 1], [4, 4, 4]), 1);
    assert.equal(normalizedMutualInformation([0, 0, 1, 1], [4, 4, 4, 4]), 0);
  });
});

/** The obvious O(N² log N) leave-one-out weighted kNN, as the reference. */
function bruteForceKnn(data: Float32Array, dims: number, labels: Int32Array, k: number, temperature: number): number {
  const kept = [...labels.keys()].filter((i) => labels[i] >= 0);
  let correct = 0;
  for (const i of kept) {
    const scored = kept
      .filter((j) => j !== i)
      .map((j) => {
        let similarity = 0;
        for (let d = 0; d < dims; d++) similarity += data[i * dims + d] * data[j * dims + d];
        return { j, similarity };
      })
      .sort((a, b) => b.similarity - a.similarity || a.j - b.j)
      .slice(0, k);
    const votes = new Map<number, number>();
    for (const { j, similarity } of scored) votes.set(labels[j], (votes.get(labels[j]) ?? 0) + Math.exp(similarity / temperature));
    const predicted = [...votes.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
    if (predicted === labels[i]) correct++;
  }
  return correct / kept.length;
}

describe('knnAccuracy', () => {
  it('is 1 on well-separated clusters', () => {
    const { points, labels } = gaussianBlobs(600, 16, 4, { separation: 5, spread: 1, seed: 2 });
    assert.equal(knnAccuracy(l2NormalizeRows(points), labels), 1);
  });

  it('is near chance on random labels', () => {
    const embeddings = l2NormalizeRows(randomMatrix(2000, 8, 4));
    const random = createRandom(5);
    const labels = Int32Array.from({ length: 2000 }, () => random.int(4));
    assertClose(knnAccuracy(embeddings, labels), 0.25, 0.04);
  });

  it('equals a brute-force leave-one-out kNN across several similarity blocks, skipping unlabeled points', () => {
    // 1100 rows spans more than one 1024-row block; the overlap makes the vote non-trivial.
    const { points, labels } = gaussianBlobs(1100, 8, 5, { separation: 1, spread: 1, seed: 6 });
    for (let i = 0; i < labels.length; i += 7) labels[i] = -1;
    const embeddings = l2NormalizeRows(points);
    const expected = bruteForceKnn(embeddings.data, embeddings.dims, labels, 10, 0.1);
    assert.ok(expected > 0.3 && expected < 0.95, `fixture should be neither trivial nor hopeless, got ${expected}`);
    assertClose(knnAccuracy(embeddings, labels, 10, 0.1), expected, 1e-12);
  });
});

describe('knnNeighboursFor', () => {
  it('is 20, or one less than the smallest class, so a vote is never every other image', () => {
    const classes = (sizes: number[]) => sizes.flatMap((size, label) => new Array<number>(size).fill(label));
    assert.equal(knnNeighboursFor(classes([100, 100])), 20);
    assert.equal(knnNeighboursFor(classes([8, 8])), 7);
    assert.equal(knnNeighboursFor(classes([50, 3, 50])), 2);
    assert.equal(knnNeighboursFor([...classes([1, 40]), -1, -1]), 1, 'unlabelled images do not count; k stays at least 1');
  });
});
