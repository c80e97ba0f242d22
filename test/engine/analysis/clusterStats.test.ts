import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { summarizeClusters } from '../../../src/engine/analysis/clusterStats';
import { matrixFromRows } from '../../../src/engine/analysis/matrix';
import { assertClose } from './fixtures';

describe('summarizeClusters', () => {
  // Six images, three prototypes; prototype 1 is never chosen.
  const prototypeScores = matrixFromRows([
    [0.9, 0.1, 0.0],
    [0.5, 0.2, 0.1],
    [0.7, 0.0, 0.3],
    [0.1, 0.3, 0.8],
    [0.2, 0.1, 0.6],
    [0.95, 0.0, 0.1],
  ]);
  const assignments = Int32Array.of(0, 0, 0, 2, 2, 0);
  const confidences = Float32Array.of(0.8, 0.4, 0.6, 0.9, 0.5, 1.0);

  it('summarises non-empty clusters, largest first, with the best-scoring samples', () => {
    const summaries = summarizeClusters({ assignments, confidences, prototypeScores, samplesPerCluster: 3 });
    assert.equal(summaries.length, 2);
    const [first, second] = summaries;
    assert.equal(first.cluster, 0);
    assert.equal(first.size, 4);
    assert.deepEqual(first.samples, [5, 0, 2]);
    assertClose(first.meanConfidence, (0.8 + 0.4 + 0.6 + 1.0) / 4, 1e-6);
    assert.equal(first.majorityLabel, undefined);
    assert.equal(first.purity, undefined);
    assert.equal(second.cluster, 2);
    assert.equal(second.size, 2);
    assert.deepEqual(second.samples, [3, 4]);
    assertClose(second.meanConfidence, 0.7, 1e-6);
  });

  it('adds the majority label and its share among labelled members', () => {
    const labels = Int32Array.of(1, 1, 0, 2, -1, -1);
    const summaries = summarizeClusters({ assignments, confidences, prototypeScores, labels, labelNames: ['cat', 'dog', 'fox'] });
    // Cluster 0 has labels dog, dog, cat and one unlabeled image: dog at 2/3.
    assert.equal(summaries[0].majorityLabel, 'dog');
    assertClose(summaries[0].purity ?? NaN, 2 / 3, 1e-12);
    assert.equal(summaries[0].samples.length, 4);
    assert.equal(summaries[1].majorityLabel, 'fox');
    assert.equal(summaries[1].purity, 1);
  });

  it('rejects mismatched inputs', () => {
    assert.throws(() => summarizeClusters({ assignments, confidences: new Float32Array(2), prototypeScores }));
    assert.throws(() => summarizeClusters({ assignments: Int32Array.of(0, 0, 0, 2, 2, 3), confidences, prototypeScores }));
  });
});
