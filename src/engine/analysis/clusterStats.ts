// Per-cluster summaries for the index result: size, the most typical images, confidence and label purity.

import type { ClusterSummary } from '../../protocol/options';
import { assertMatrix, Matrix } from './matrix';
import { createTopKHeaps, offerTopK, sortedTopK } from './topK';

export interface ClusterStatsInput {
  assignments: Int32Array;
  /** The highest prototype probability of each image. */
  confidences: Float32Array;
  /** N × K cosine scores of every image against every prototype. */
  prototypeScores: Matrix;
  /** Label index per image, −1 where unlabeled. */
  labels?: Int32Array;
  labelNames?: string[];
  samplesPerCluster?: number;
}

/** One summary per non-empty cluster, largest first (ties by cluster index). */
export function summarizeClusters(input: ClusterStatsInput): ClusterSummary[] {
  const { assignments, confidences, prototypeScores, labels, labelNames } = input;
  const samplesPerCluster = Math.max(0, Math.floor(input.samplesPerCluster ?? 8));
  assertMatrix(prototypeScores, 'prototypeScores');
  const count = assignments.length;
  if (confidences.length !== count || prototypeScores.rows !== count || (labels !== undefined && labels.length !== count)) {
    throw new Error(`Cluster statistics need one confidence, score row and label per image (${count} images).`);
  }
  const clusterCount = prototypeScores.dims;
  const sizes = new Int32Array(clusterCount);
  const confidenceSums = new Float64Array(clusterCount);
  const labelCounts = new Map<number, Map<number, number>>();
  const heaps = createTopKHeaps(clusterCount, samplesPerCluster);
  for (let i = 0; i < count; i++) {
    const cluster = assignments[i];
    if (cluster < 0) continue;
    if (cluster >= clusterCount) throw new Error(`Image ${i} is assigned to cluster ${cluster}, but there are ${clusterCount} prototypes.`);
    sizes[cluster]++;
    confidenceSums[cluster] += confidences[i];
    offerTopK(heaps, cluster, prototypeScores.data[i * clusterCount + cluster], i);
    const label = labels?.[i] ?? -1;
    if (label >= 0) {
      let counts = labelCounts.get(cluster);
      if (counts === undefined) labelCounts.set(cluster, (counts = new Map()));
      counts.set(label, (counts.get(label) ?? 0) + 1);
    }
  }

  const summaries: ClusterSummary[] = [];
  for (let cluster = 0; cluster < clusterCount; cluster++) {
    if (sizes[cluster] === 0) continue;
    const summary: ClusterSummary = {
      cluster,
      size: sizes[cluster],
      samples: sortedTopK(heaps, cluster).map((entry) => entry.index),
      meanConfidence: confidenceSums[cluster] / sizes[cluster],
    };
    const counts = labelCounts.get(cluster);
    if (counts !== undefined) {
      let majority = -1;
      let majorityCount = 0;
      let labelled = 0;
      for (const [label, labelCount] of counts) {
        labelled += labelCount;
        // Ties go to the lower label index, so the summary does not depend on image order.
        if (labelCount > majorityCount || (labelCount === majorityCount && label < majority)) {
          majority = label;
          majorityCount = labelCount;
        }
      }
      summary.majorityLabel = labelNames?.[majority] ?? String(majority);
      // Purity is the majority's share of the cluster's labelled images; unlabeled ones carry no vote.
      summary.purity = majorityCount / labelled;
    }
    summaries.push(summary);
  }
  return summaries.sort((a, b) => b.size - a.size || a.cluster - b.cluster);
}
