// The evaluate job: a run's clustering scored against its folder labels, and the raw-pixel baseline it must beat.
import path from 'node:path';
import type { ClusteringScores, EvaluateResult, PixelBaseline } from '../../protocol/engine';
import { loadImageSet } from '../data/decode';
import { scanImageFolder } from '../data/scan';
import { readManifest } from '../runFolder';
import { EngineError } from '../errors';
import { cachedIndex } from '../index/runQueries';
import type { JobContext } from '../jobContext';
import { kMeans } from '../analysis/kmeans';
import { l2NormalizeRows, type Matrix } from '../analysis/matrix';
import { adjustedRandIndex, clusteringAccuracy, knnAccuracy, knnNeighboursFor, normalizedMutualInformation } from '../analysis/metrics';

/** k-means keeps the best of this many k-means++ starts (lowest inertia, no labels), as sklearn's n_init=10 in the reference. */
export const kMeansRestarts = 10;

/** Scores a run's clustering against its folder labels: k-means on backbone features and on projections, and the prototypes. */
export async function evaluateRun(runDir: string, context: JobContext, options: { pixelBaseline?: boolean } = {}): Promise<EvaluateResult> {
  const index = await cachedIndex(path.resolve(runDir));
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
  const knnK = knnNeighboursFor(labels);
  const knn = knnAccuracy(index.features, labels, knnK);
  const pixels = options.pixelBaseline ? await pixelBaseline(runDir, index.header.records, labels, labelCount, context) : undefined;
  context.progress({ phase: 'evaluate', fraction: 1, message: 'Done' });
  return {
    kind: 'evaluate',
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
    knn_k: knnK,
    clusters_used: new Set(index.assignments).size,
    ...(pixels ? { pixels } : {}),
  };
}

/**
 * The baseline a learned feature must beat: k-means (same k, restarts and seed) and kNN on the raw pixels of
 * the run's images, decoded at the run's image size, in the index's order.
 */
async function pixelBaseline(runDir: string, records: { path: string }[], labels: Int32Array, k: number, context: JobContext): Promise<PixelBaseline> {
  const manifest = await readManifest(path.resolve(runDir));
  context.progress({ phase: 'evaluate', fraction: 0.7, message: 'Decoding the images for the raw-pixel baseline' });
  const scan = await scanImageFolder(manifest.imagesDir, { signal: context.signal, followSymlinksOutside: manifest.options.followLinks === true });
  const images = await loadImageSet(scan, { imageSizePx: manifest.options.imageSizePx, channels: manifest.channels, signal: context.signal });
  const dims = images.imageSizePx * images.imageSizePx * images.channels;
  const rowOf = new Map(images.records.map((record, row) => [record.path, row]));
  const plain: Matrix = { data: new Float32Array(records.length * dims), rows: records.length, dims };
  records.forEach((record, i) => {
    const row = rowOf.get(record.path);
    if (row === undefined) throw new EngineError('BAD_REQUEST', `${record.path} in ${manifest.imagesDir} no longer decodes; re-index the run ("cluster-lens index ${runDir}") and evaluate again.`);
    for (let d = 0; d < dims; d++) plain.data[i * dims + d] = images.pixels[row * dims + d] / 255;
  });
  const normalised = l2NormalizeRows(plain);
  // kNN compares by cosine (it expects unit rows), so one figure serves both variants.
  const knn = knnAccuracy(normalised, labels, knnNeighboursFor(labels));
  const score = (points: Matrix, fraction: number): ClusteringScores => {
    context.progress({ phase: 'evaluate', fraction, message: `k-means (k = ${k}) on ${dims} raw pixel values per image` });
    const clusters = kMeans(points, k, { seed: 0, restarts: kMeansRestarts }).assignments;
    return { nmi: normalizedMutualInformation(labels, clusters), ari: adjustedRandIndex(labels, clusters), acc: clusteringAccuracy(labels, clusters), knn };
  };
  return { imageSizePx: images.imageSizePx, plain: score(plain, 0.75), normalised: score(normalised, 0.9) };
}
