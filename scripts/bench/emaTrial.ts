// Paired trial of weight averaging: one training run at a fixed epoch count, scored with its last weights and with
// exponential moving averages of them over several horizons, so the seed's noise does not enter the comparison.
//   node --import tsx scripts/bench/emaTrial.ts --images DIR --epochs 38 [--seed 0] [--horizons 0.5,1,2,4] [--every N] ['{"batchSize":128}']
// (--every N also scores every N epochs.)
import { parseArgs } from 'node:util';
import type { TrainOptions } from '../../src/protocol/options';
import { resolveTrainOptions } from '../../src/engine/config';
import { loadImageSet } from '../../src/engine/data/decode';
import { scanImageFolder } from '../../src/engine/data/scan';
import { embedWithOnnxRuntime } from '../../src/engine/index/ortEmbed';
import { silentContext } from '../../src/engine/jobContext';
import { kMeans } from '../../src/engine/analysis/kmeans';
import { knnAccuracy, normalizedMutualInformation } from '../../src/engine/analysis/metrics';
import type { SwavModel } from '../../src/engine/model/model';
import { useDevice } from '../../src/engine/runtime/device';
import { learningRateAt } from '../../src/engine/swav/schedule';
import { createTrainStep } from '../../src/engine/swav/trainer';
import { createRandom } from '../../src/engine/util/random';

const { values, positionals } = parseArgs({
  options: { images: { type: 'string' }, epochs: { type: 'string' }, seed: { type: 'string' }, horizons: { type: 'string' }, every: { type: 'string' } },
  allowPositionals: true,
});

async function main(): Promise<void> {
  await useDevice('cpu', () => undefined);
  const scan = await scanImageFolder(values.images!, {});
  const given = JSON.parse(positionals[0] ?? '{}') as Partial<TrainOptions>;
  const epochs = Number(values.epochs ?? 38);
  const options = resolveTrainOptions({ ...given, epochs, seed: Number(values.seed ?? 0) }, { gpu: false, nativeImageSizePx: 28, imageCount: scan.files.length });
  const images = await loadImageSet(scan, { imageSizePx: options.imageSizePx, channels: 'auto' });
  const labels = Int32Array.from(images.records, (r) => r.label);
  const k = images.labelNames.length;
  const step = createTrainStep(options, images);
  const batchSize = Math.min(options.batchSize, images.records.length);
  const stepsPerEpoch = Math.floor(images.records.length / batchSize);
  const totalSteps = epochs * stepsPerEpoch;
  const warmupSteps = Math.max(1, Math.round(options.warmupEpochs * stepsPerEpoch));
  const horizons = (values.horizons ?? '0.5,1,2,4').split(',').map(Number);
  const names = [...step.model.variables.keys()];
  const averages = horizons.map(() => new Map<string, Float32Array>());
  const every = Number(values.every ?? epochs);
  let t = 0;

  const score = async (weights: Map<string, Float32Array> | undefined) => {
    // The averaged weights (and running statistics) in a store of their own; the live one is left as it is.
    const model: SwavModel = weights
      ? { spec: step.model.spec, variables: new Map([...step.model.variables].map(([name, v]) => [name, { ...v, values: weights.get(name)! }])) }
      : step.model;
    const out = await embedWithOnnxRuntime(model, images, silentContext(), [0, 1]);
    const clusters = kMeans(out.features, k, { seed: 0, restarts: 10 }).assignments;
    const projection = kMeans(out.embeddings, k, { seed: 0, restarts: 10 }).assignments;
    const r = (x: number) => Math.round(x * 1000) / 1000;
    return { nmi: r(normalizedMutualInformation(labels, clusters)), projNmi: r(normalizedMutualInformation(labels, projection)), knn: r(knnAccuracy(out.features, labels, 20)) };
  };

  const started = Date.now();
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = createRandom(options.seed * 100_003 + epoch + 1).shuffle(Array.from({ length: images.records.length }, (_, i) => i));
    for (let s = 0; s < stepsPerEpoch; s++) {
      const lr = t < warmupSteps ? (options.learningRate * (t + 1)) / warmupSteps : learningRateAt(t / totalSteps, 0, options.learningRate, options.finalLearningRate);
      await step.run(order.slice(s * batchSize, (s + 1) * batchSize), lr, t, epoch);
      t++;
      const current = new Map(names.map((name) => [name, step.model.variables.get(name)!.values]));
      horizons.forEach((h, i) => {
        const decay = Math.min(1 - 1 / (h * stepsPerEpoch), (1 + t) / (10 + t));
        for (const [name, w] of current) {
          const avg = averages[i].get(name);
          if (!avg) averages[i].set(name, w.slice());
          else for (let j = 0; j < w.length; j++) avg[j] = decay * avg[j] + (1 - decay) * w[j];
        }
      });
    }
    if ((epoch + 1) % every === 0 || epoch + 1 === epochs) {
      const row: Record<string, unknown> = { epoch: epoch + 1, seconds: Math.round((Date.now() - started) / 1000), last: await score(undefined) };
      for (let i = 0; i < horizons.length; i++) row[`ema${horizons[i]}`] = await score(averages[i]);
      process.stdout.write(`${JSON.stringify(row)}\n`);
    }
  }
  step.dispose();
}

void main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack}\n`);
  process.exitCode = 1;
});
