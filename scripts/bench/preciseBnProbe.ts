// Paired measure of precise BatchNorm (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"; pycls's precise BN)
// on finished runs: k-means NMI, kNN and the projections' NMI of each run's features with the running statistics
// its checkpoint holds, then with statistics recomputed on the clean images. Same weights both ways, so no seed
// noise. Not adopted in training (see the README's quality section): after short runs it hid a planted outlier.
//   node --import tsx scripts/bench/preciseBnProbe.ts RUN_DIR [RUN_DIR …]
import { kMeans } from '../../src/engine/analysis/kmeans';
import { knnAccuracy, normalizedMutualInformation } from '../../src/engine/analysis/metrics';
import { batchPixels } from '../../src/engine/data/batch';
import { loadImageSet, type ImageSet } from '../../src/engine/data/decode';
import { scanImageFolder } from '../../src/engine/data/scan';
import { embedWithOnnxRuntime } from '../../src/engine/index/ortEmbed';
import { silentContext } from '../../src/engine/jobContext';
import { checkpointPath, loadCheckpoint } from '../../src/engine/model/checkpoint';
import { disposeModel, trainableVariables, variable, type SwavModel } from '../../src/engine/model/model';
import { readManifest } from '../../src/engine/runFolder';
import { useDevice } from '../../src/engine/runtime/device';
import { OrtModel, type OrtArray } from '../../src/engine/runtime/session';
import { cpuThreadCount } from '../../src/engine/runtime/threads';
import { buildTrainingGraph, trainingGraphNames as names } from '../../src/engine/swav/stepGraph';
import { createRandom } from '../../src/engine/util/random';

const round = (value: number) => Math.round(value * 1000) / 1000;

/**
 * Each BatchNorm layer's batch mean and (biased) variance over clean images, from the training step's graph fed
 * the images themselves as its two global crops (no local crops, no queue): the graph's BatchNorm layers run in
 * train mode and output their batch statistics, which over the batch twice are those of the batch once.
 */
function cleanBatchStatistics(
  model: SwavModel,
  images: ImageSet,
): { of: (indices: number[]) => Promise<Map<string, { mean: Float32Array; variance: Float32Array; positions: number }>>; dispose: () => Promise<void> } {
  const sizePx = images.imageSizePx;
  const channels = images.channels;
  const trainable = trainableVariables(model);
  const shapes = new Map([...trainable].map(([name, v]) => [name, v.shape]));
  const globalCrops = 2;
  const sessions = new Map<number, Promise<{ session: OrtModel; layers: { layer: string; positions: number }[] }>>();
  const sessionFor = (batch: number) => {
    let opened = sessions.get(batch);
    if (!opened) {
      const graph = buildTrainingGraph(
        model.spec,
        shapes,
        { batch, globalCrops, globalSizePx: sizePx, localCrops: 0, localSizePx: sizePx, queueRows: 0 },
        { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3, cropsForAssign: [0, 1] },
      );
      opened = OrtModel.open(graph.bytes, 'batch statistics (the training step on clean images)', { threads: cpuThreadCount() }).then((session) => ({ session, layers: graph.batchNormLayers }));
      sessions.set(batch, opened);
    }
    return opened;
  };
  const of = async (indices: number[]) => {
    const { session, layers } = await sessionFor(indices.length);
    const pixels = batchPixels(images, indices);
    const crops = new Float32Array(globalCrops * pixels.length);
    for (let crop = 0; crop < globalCrops; crop++) crops.set(pixels, crop * pixels.length);
    const feeds: Record<string, OrtArray> = { [names.globalCrops]: { data: crops, dims: [globalCrops * indices.length, sizePx, sizePx, channels] } };
    for (const [name, v] of trainable) feeds[name] = { data: v.values, dims: v.shape };
    const out = await session.run(feeds, layers.flatMap(({ layer }) => [names.batchMean(layer), names.batchVariance(layer)]));
    return new Map(layers.map(({ layer, positions }) => [layer, { mean: out[names.batchMean(layer)].data, variance: out[names.batchVariance(layer)].data, positions: positions / globalCrops }]));
  };
  const dispose = async () => {
    for (const opened of sessions.values()) await (await opened).session.dispose();
    sessions.clear();
  };
  return { of, dispose };
}

/**
 * Each BatchNorm layer's running mean and variance become the position-weighted average of its batch statistics
 * (unbiased variances) over a seeded sample of at most 4,096 images, in batches of about 256.
 */
async function recomputeBatchNormStatistics(model: SwavModel, images: ImageSet, seed: number): Promise<void> {
  const total = images.records.length;
  const count = Math.min(total, 4096);
  const chosen = createRandom(seed).shuffle(Array.from({ length: total }, (_, i) => i)).slice(0, count);
  const batches = Math.ceil(count / 256);
  const statistics = cleanBatchStatistics(model, images);
  const sums = new Map<string, { mean: Float64Array; variance: Float64Array; weight: number }>();
  try {
    for (let b = 0; b < batches; b++) {
      const batch = await statistics.of(chosen.slice(Math.floor((b * count) / batches), Math.floor(((b + 1) * count) / batches)));
      for (const [layer, { mean: means, variance: variances, positions }] of batch) {
        let sum = sums.get(layer);
        if (!sum) sums.set(layer, (sum = { mean: new Float64Array(means.length), variance: new Float64Array(means.length), weight: 0 }));
        for (let c = 0; c < means.length; c++) {
          sum.mean[c] += positions * means[c];
          sum.variance[c] += (positions * positions * variances[c]) / Math.max(1, positions - 1);
        }
        sum.weight += positions;
      }
    }
  } finally {
    await statistics.dispose();
  }
  for (const [layer, { mean, variance, weight }] of sums) {
    variable(model, `${layer}.runningMean`).values.set(Float32Array.from(mean, (m) => m / weight));
    variable(model, `${layer}.runningVariance`).values.set(Float32Array.from(variance, (v) => v / weight));
  }
}

async function scores(model: SwavModel, images: ImageSet): Promise<{ nmi: number; projectionNmi: number; knn: number }> {
  const labels = Int32Array.from(images.records, (record) => record.label);
  const k = images.labelNames.length;
  const embedded = await embedWithOnnxRuntime(model, images, silentContext(), [0, 1]);
  const nmi = (points: typeof embedded.features) => round(normalizedMutualInformation(labels, kMeans(points, k, { seed: 0, restarts: 10 }).assignments));
  return { nmi: nmi(embedded.features), projectionNmi: nmi(embedded.embeddings), knn: round(knnAccuracy(embedded.features, labels, 20)) };
}

async function main(): Promise<void> {
  await useDevice('cpu', () => undefined);
  for (const runDir of process.argv.slice(2)) {
    const manifest = await readManifest(runDir);
    const { model } = await loadCheckpoint(checkpointPath(runDir));
    const images = await loadImageSet(await scanImageFolder(manifest.imagesDir, {}), { imageSizePx: manifest.options.imageSizePx, channels: manifest.channels });
    if (images.labelNames.length < 2) throw new Error(`${manifest.imagesDir} has no class subfolders to score against.`);
    const saved = await scores(model, images);
    await recomputeBatchNormStatistics(model, images, manifest.options.seed);
    const precise = await scores(model, images);
    process.stdout.write(`${JSON.stringify({ runDir, images: images.records.length, saved, precise })}\n`);
    disposeModel(model);
  }
}

void main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exitCode = 1;
});
