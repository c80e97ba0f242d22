// Paired measure of precise BatchNorm (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"; pycls's precise BN)
// on finished runs: k-means NMI, kNN and the projections' NMI of each run's features with the running statistics
// its checkpoint holds, then with statistics recomputed on the clean images. Same weights both ways, so no seed
// noise. Not adopted in training (see the README's quality section): after short runs it hid a planted outlier.
//   node --import tsx scripts/bench/preciseBnProbe.ts RUN_DIR [RUN_DIR …]
import * as tf from '@tensorflow/tfjs-core';
import { kMeans } from '../../src/engine/analysis/kmeans';
import { knnAccuracy, normalizedMutualInformation } from '../../src/engine/analysis/metrics';
import { imageBatch } from '../../src/engine/data/batch';
import { loadImageSet, type ImageSet } from '../../src/engine/data/decode';
import { scanImageFolder } from '../../src/engine/data/scan';
import { embedImageSet } from '../../src/engine/index/indexer';
import { silentContext } from '../../src/engine/jobContext';
import { checkpointPath, loadCheckpoint } from '../../src/engine/model/checkpoint';
import { disposeModel, forward, variable, type BatchStatistics, type SwavModel } from '../../src/engine/model/model';
import { readManifest } from '../../src/engine/runFolder';
import { initBackend } from '../../src/engine/runtime/tfjs/backend';
import { createRandom } from '../../src/engine/util/random';

const round = (value: number) => Math.round(value * 1000) / 1000;

/**
 * Each BatchNorm layer's running mean and variance become the position-weighted average of its batch statistics
 * (unbiased variances) over a seeded sample of at most 4,096 images, in batches of about 256.
 */
function recomputeBatchNormStatistics(model: SwavModel, images: ImageSet, seed: number): void {
  const total = images.records.length;
  const count = Math.min(total, 4096);
  const chosen = createRandom(seed).shuffle(Array.from({ length: total }, (_, i) => i)).slice(0, count);
  const batches = Math.ceil(count / 256);
  const sums = new Map<string, { mean: Float64Array; variance: Float64Array; weight: number }>();
  for (let b = 0; b < batches; b++) {
    const statistics: BatchStatistics = new Map();
    tf.tidy(() => {
      forward(model, imageBatch(images, chosen.slice(Math.floor((b * count) / batches), Math.floor(((b + 1) * count) / batches))), 'train', statistics);
    });
    for (const [layer, { mean, variance, count: positions }] of statistics) {
      const [means, variances] = [mean.dataSync(), variance.dataSync()];
      let sum = sums.get(layer);
      if (!sum) sums.set(layer, (sum = { mean: new Float64Array(means.length), variance: new Float64Array(means.length), weight: 0 }));
      for (let c = 0; c < means.length; c++) {
        sum.mean[c] += positions * means[c];
        sum.variance[c] += (positions * positions * variances[c]) / Math.max(1, positions - 1);
      }
      sum.weight += positions;
      tf.dispose([mean, variance]);
    }
  }
  for (const [layer, { mean, variance, weight }] of sums) {
    tf.tidy(() => {
      variable(model, `${layer}.runningMean`).assign(tf.tensor1d(Float32Array.from(mean, (m) => m / weight)));
      variable(model, `${layer}.runningVariance`).assign(tf.tensor1d(Float32Array.from(variance, (v) => v / weight)));
    });
  }
}

async function scores(model: SwavModel, images: ImageSet): Promise<{ nmi: number; projectionNmi: number; knn: number }> {
  const labels = Int32Array.from(images.records, (record) => record.label);
  const k = images.labelNames.length;
  const embedded = await embedImageSet(model, images, silentContext());
  const nmi = (points: typeof embedded.features) => round(normalizedMutualInformation(labels, kMeans(points, k, { seed: 0, restarts: 10 }).assignments));
  return { nmi: nmi(embedded.features), projectionNmi: nmi(embedded.embeddings), knn: round(knnAccuracy(embedded.features, labels, 20)) };
}

async function main(): Promise<void> {
  await initBackend('auto', () => undefined);
  for (const runDir of process.argv.slice(2)) {
    const manifest = await readManifest(runDir);
    const { model } = await loadCheckpoint(checkpointPath(runDir));
    const images = await loadImageSet(await scanImageFolder(manifest.imagesDir, {}), { imageSizePx: manifest.options.imageSizePx, channels: manifest.channels });
    if (images.labelNames.length < 2) throw new Error(`${manifest.imagesDir} has no class subfolders to score against.`);
    const saved = await scores(model, images);
    recomputeBatchNormStatistics(model, images, manifest.options.seed);
    const precise = await scores(model, images);
    process.stdout.write(`${JSON.stringify({ runDir, images: images.records.length, saved, precise })}\n`);
    disposeModel(model);
  }
}

void main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exitCode = 1;
});
