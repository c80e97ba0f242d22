// Paired measure of precise BatchNorm on finished runs: k-means NMI (and kNN, projections' NMI) of each run's
// features with the running statistics its checkpoint holds, then with statistics recomputed on the clean images
// (recomputeBatchNormStatistics, the step training now ends with). Same weights both ways, so no seed noise.
//   node --import tsx scripts/bench/preciseBnProbe.ts RUN_DIR [RUN_DIR …]
// Runs trained before the step show the difference; on newer runs the two rows match.
import { kMeans } from '../../src/engine/analysis/kmeans';
import { knnAccuracy, normalizedMutualInformation } from '../../src/engine/analysis/metrics';
import { loadImageSet } from '../../src/engine/data/decode';
import { scanImageFolder } from '../../src/engine/data/scan';
import { embedImageSet } from '../../src/engine/index/indexer';
import { silentContext } from '../../src/engine/jobContext';
import { checkpointPath, loadCheckpoint } from '../../src/engine/model/checkpoint';
import { disposeModel, type SwavModel } from '../../src/engine/model/model';
import { readManifest } from '../../src/engine/runFolder';
import { initBackend } from '../../src/engine/runtime/tfjs/backend';
import { recomputeBatchNormStatistics } from '../../src/engine/swav/preciseBatchNorm';
import type { ImageSet } from '../../src/engine/data/decode';

const round = (value: number) => Math.round(value * 1000) / 1000;

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
    await recomputeBatchNormStatistics(model, images, silentContext(), { seed: manifest.options.seed });
    const precise = await scores(model, images);
    process.stdout.write(`${JSON.stringify({ runDir, images: images.records.length, saved, precise })}\n`);
    disposeModel(model);
  }
}

void main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exitCode = 1;
});
