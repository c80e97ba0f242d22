// Clustering and embedding quality against ground-truth labels: NMI, ARI, ACC (sklearn conventions) and the kNN monitor.

import { linearSumAssignment } from './hungarian';
import { assertMatrix, Matrix, multiplyTransposed, selectRows } from './matrix';
import { createTopKHeaps, offerTopK, topKThreshold } from './topK';

/** Counts of (label, cluster) pairs, with both relabelled to 0..count-1 and unlabeled entries (label < 0) dropped. */
export interface Contingency {
  labelCount: number;
  clusterCount: number;
  /** labelCount × clusterCount, row-major. */
  counts: Float64Array;
  labelTotals: Float64Array;
  clusterTotals: Float64Array;
  total: number;
}

export function contingencyTable(labels: ArrayLike<number>, clusters: ArrayLike<number>): Contingency {
  if (labels.length !== clusters.length) {
    throw new Error(`Got ${labels.length} labels but ${clusters.length} cluster assignments.`);
  }
  const labelIds = new Map<number, number>();
  const clusterIds = new Map<number, number>();
  const pairs: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0) continue;
    let label = labelIds.get(labels[i]);
    if (label === undefined) labelIds.set(labels[i], (label = labelIds.size));
    let cluster = clusterIds.get(clusters[i]);
    if (cluster === undefined) clusterIds.set(clusters[i], (cluster = clusterIds.size));
    pairs.push(label, cluster);
  }
  const labelCount = labelIds.size;
  const clusterCount = clusterIds.size;
  const counts = new Float64Array(labelCount * clusterCount);
  const labelTotals = new Float64Array(labelCount);
  const clusterTotals = new Float64Array(clusterCount);
  for (let p = 0; p < pairs.length; p += 2) {
    counts[pairs[p] * clusterCount + pairs[p + 1]] += 1;
    labelTotals[pairs[p]] += 1;
    clusterTotals[pairs[p + 1]] += 1;
  }
  return { labelCount, clusterCount, counts, labelTotals, clusterTotals, total: pairs.length / 2 };
}

function entropy(totals: Float64Array, total: number): number {
  let sum = 0;
  for (const count of totals) if (count > 0) sum -= (count / total) * Math.log(count / total);
  return sum;
}

/** NMI with the arithmetic mean of the two entropies as normaliser (sklearn's default). */
export function normalizedMutualInformation(labels: ArrayLike<number>, clusters: ArrayLike<number>): number {
  const table = contingencyTable(labels, clusters);
  // Both sides unsplit (or empty) is a perfect match, as in sklearn.
  if (table.labelCount === table.clusterCount && table.labelCount <= 1) return 1;
  const { counts, labelTotals, clusterTotals, total, clusterCount } = table;
  let mutualInformation = 0;
  for (let label = 0; label < table.labelCount; label++) {
    for (let cluster = 0; cluster < clusterCount; cluster++) {
      const count = counts[label * clusterCount + cluster];
      if (count === 0) continue;
      // I = Σ p(l,c) log(p(l,c) / (p(l) p(c)))
      mutualInformation += (count / total) * Math.log((count * total) / (labelTotals[label] * clusterTotals[cluster]));
    }
  }
  if (mutualInformation <= 0) return 0;
  const normaliser = (entropy(labelTotals, total) + entropy(clusterTotals, total)) / 2;
  return Math.min(1, mutualInformation / normaliser);
}

/** ARI from the pair confusion matrix, exactly as sklearn's adjusted_rand_score. */
export function adjustedRandIndex(labels: ArrayLike<number>, clusters: ArrayLike<number>): number {
  const { counts, labelTotals, clusterTotals, total, clusterCount, labelCount } = contingencyTable(labels, clusters);
  let sumSquares = 0;
  let labelWeighted = 0;
  let clusterWeighted = 0;
  for (let label = 0; label < labelCount; label++) {
    for (let cluster = 0; cluster < clusterCount; cluster++) {
      const count = counts[label * clusterCount + cluster];
      sumSquares += count * count;
      labelWeighted += count * labelTotals[label];
      clusterWeighted += count * clusterTotals[cluster];
    }
  }
  // Ordered pairs: together in both, split only by clusters, split only by labels, apart in both.
  const together = sumSquares - total;
  const splitByClustersOnly = labelWeighted - sumSquares;
  const splitByLabelsOnly = clusterWeighted - sumSquares;
  const apart = total * total - splitByClustersOnly - splitByLabelsOnly - sumSquares;
  if (splitByClustersOnly === 0 && splitByLabelsOnly === 0) return 1;
  return (
    (2 * (together * apart - splitByLabelsOnly * splitByClustersOnly)) /
    ((together + splitByLabelsOnly) * (splitByLabelsOnly + apart) + (together + splitByClustersOnly) * (splitByClustersOnly + apart))
  );
}

/** Share of entries whose cluster maps to their label under the best one-to-one matching; unmatched clusters count as wrong. */
export function clusteringAccuracy(labels: ArrayLike<number>, clusters: ArrayLike<number>): number {
  const { counts, labelCount, clusterCount, total } = contingencyTable(labels, clusters);
  if (total === 0) return 0;
  const cost: number[][] = [];
  for (let cluster = 0; cluster < clusterCount; cluster++) {
    const row: number[] = [];
    for (let label = 0; label < labelCount; label++) row.push(-counts[label * clusterCount + cluster]);
    cost.push(row);
  }
  const { rows, cols } = linearSumAssignment(cost);
  let matched = 0;
  for (let p = 0; p < rows.length; p++) matched -= cost[rows[p]][cols[p]];
  return matched / total;
}

// Keeps one block of similarities near 32 MB whatever N is.
const blockValueBudget = 8 * 1024 * 1024;

/**
 * Leave-one-out weighted kNN accuracy on L2-normalised embeddings (the DINO / SwAV monitor):
 * the k most cosine-similar other labelled images vote for their label with weight exp(similarity / temperature).
 */
export function knnAccuracy(embeddings: Matrix, labels: ArrayLike<number>, k = 20, temperature = 0.07): number {
  assertMatrix(embeddings, 'embeddings');
  if (labels.length !== embeddings.rows) throw new Error(`Got ${labels.length} labels for ${embeddings.rows} embeddings.`);
  if (!(temperature > 0)) throw new Error('The kNN temperature must be positive.');
  const labelled: number[] = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] >= 0) labelled.push(i);
  const count = labelled.length;
  const neighbours = Math.min(Math.floor(k), count - 1);
  if (count < 2 || neighbours < 1) return 0;
  const points = selectRows(embeddings, labelled);
  const classIds = new Map<number, number>();
  const classes = new Int32Array(count);
  labelled.forEach((original, i) => {
    let id = classIds.get(labels[original]);
    if (id === undefined) classIds.set(labels[original], (id = classIds.size));
    classes[i] = id;
  });

  const heaps = createTopKHeaps(count, neighbours);
  // Most pairs lose to every kept neighbour; checking a cached threshold first skips the heap call for them.
  const thresholds = new Float64Array(count).fill(-Infinity);
  const blockRows = Math.max(1, Math.min(count, 1024, Math.floor(Math.sqrt(blockValueBudget))));
  const blockCount = Math.ceil(count / blockRows);
  const blockOf = (block: number): { start: number; matrix: Matrix } => {
    const start = block * blockRows;
    const end = Math.min(count, start + blockRows);
    return { start, matrix: { data: points.data.subarray(start * points.dims, end * points.dims), rows: end - start, dims: points.dims } };
  };
  // Similarity is symmetric: each pair of blocks is multiplied once and feeds both rows' heaps.
  for (let rightBlock = 0; rightBlock < blockCount; rightBlock++) {
    const right = blockOf(rightBlock);
    for (let leftBlock = 0; leftBlock <= rightBlock; leftBlock++) {
      const left = leftBlock === rightBlock ? right : blockOf(leftBlock);
      const similarities = multiplyTransposed(left.matrix, right.matrix);
      const width = right.matrix.rows;
      for (let r = 0; r < left.matrix.rows; r++) {
        const row = left.start + r;
        // Within the diagonal block only the upper triangle is new, and self-pairs are left out.
        const firstColumn = leftBlock === rightBlock ? r + 1 : 0;
        for (let c = firstColumn; c < width; c++) {
          const similarity = similarities[r * width + c];
          const column = right.start + c;
          if (similarity >= thresholds[row]) {
            offerTopK(heaps, row, similarity, column);
            thresholds[row] = topKThreshold(heaps, row);
          }
          if (similarity >= thresholds[column]) {
            offerTopK(heaps, column, similarity, row);
            thresholds[column] = topKThreshold(heaps, column);
          }
        }
      }
    }
  }

  const votes = new Float64Array(classIds.size);
  let correct = 0;
  for (let row = 0; row < count; row++) {
    votes.fill(0);
    const base = row * neighbours;
    let best = -Infinity;
    for (let slot = 0; slot < neighbours; slot++) best = Math.max(best, heaps.similarities[base + slot]);
    for (let slot = 0; slot < neighbours; slot++) {
      // Shifting by the best similarity keeps exp() finite for small temperatures and leaves the argmax unchanged.
      votes[classes[heaps.indices[base + slot]]] += Math.exp((heaps.similarities[base + slot] - best) / temperature);
    }
    let predicted = 0;
    for (let id = 1; id < votes.length; id++) if (votes[id] > votes[predicted]) predicted = id;
    if (predicted === classes[row]) correct++;
  }
  return correct / count;
}

/** DINO's protocol: k = 20 neighbours vote. */
const knnNeighbours = 20;

/**
 * k for the leave-one-out kNN: 20 (DINO's protocol), but fewer than the smallest class holds besides the query.
 * With k past that, a small folder's vote is every other image, and the larger class wins it whatever the features
 * (measured: 16 images in two classes scored 0 at k = 20, 0.875 at k = 5, and 1 at k = 1).
 */
export function knnNeighboursFor(labels: ArrayLike<number>): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) if (labels[i] >= 0) counts.set(labels[i], (counts.get(labels[i]) ?? 0) + 1);
  const smallest = Math.min(...counts.values());
  return Math.max(1, Math.min(knnNeighbours, smallest - 1));
}
