import path from 'node:path';
import type { EvaluateResult } from '../../protocol';
import { EngineError } from '../errors';
import { cachedIndex, initRunBackend } from '../index/runQueries';
import type { JobContext } from '../jobContext';
import { kMeans } from './kmeans';
import { adjustedRandIndex, clusteringAccuracy, knnAccuracy, normalizedMutualInformation } from './metrics';

export const knnNeighbours = 20;
/** k-means keeps the best of this many k-means++ starts (lowest inertia, no labels), as sklearn's n_init=10 in the reference. */
export const kMeansRestarts = 10;

/** Scores a run's clustering against its folder labels: k-means on backbone features and on projections, and the prototypes. */
export async function evaluateRun(runDir: string, context: JobContext): Promise<EvaluateResult> {
  const index = await cachedIndex(path.resolve(runDir));
  await initRunBackend(path.resolve(runDir), context);
  const labelCount = index.header.labelNames.length;
  if (labelCount < 2) {
    throw new EngineError(
      'BAD_REQUEST',
      `The images in ${index.header.imagesDir} have no labels, so there is nothing to score against. Put the images in one subfolder per class to evaluate.`,
    );
  }
  const labels = Int32Array.from(index.header.records, (record) => record.label);
  context.progress({ phase: 'evaluate', fraction: 0.1, message: `k-means (k = ${labelCount}, best of ${kMeansRestarts} starts) on ${labels.length} images` });
  const clustering = kMeans(index.features, labelCount, { seed: 0, restarts: kMeansRestarts });
  context.progress({ phase: 'evaluate', fraction: 0.4, message: `k-means (k = ${labelCount}) on the projections` });
  const projectionClustering = kMeans(index.embeddings, labelCount, { seed: 0, restarts: kMeansRestarts });
  context.progress({ phase: 'evaluate', fraction: 0.6, message: 'kNN accuracy' });
  const knn = knnAccuracy(index.features, labels, knnNeighbours);
  context.progress({ phase: 'evaluate', fraction: 1, message: 'Done' });
  return {
    kind: 'evaluate',
    backend: index.header.backend,
    images: labels.length,
    skipped: index.header.skipped.length,
    nmi: normalizedMutualInformation(labels, clustering.assignments),
    ari: adjustedRandIndex(labels, clustering.assignments),
    acc: clusteringAccuracy(labels, clustering.assignments),
    projection_nmi: normalizedMutualInformation(labels, projectionClustering.assignments),
    projection_ari: adjustedRandIndex(labels, projectionClustering.assignments),
    projection_acc: clusteringAccuracy(labels, projectionClustering.assignments),
    proto_nmi: normalizedMutualInformation(labels, index.assignments),
    proto_ari: adjustedRandIndex(labels, index.assignments),
    proto_acc: clusteringAccuracy(labels, index.assignments),
    knn,
    knn_k: knnNeighbours,
    clusters_used: new Set(index.assignments).size,
  };
}
