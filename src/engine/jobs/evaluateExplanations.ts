// The `evaluate-explanations` request: every chosen method, and a random-map baseline, explains the
// similarity of N images of a run with their pairs, and each map is scored for faithfulness (insertion and
// deletion, average drop and increase), stability (max-sensitivity) and consistency (CGC).
import path from 'node:path';
import type { ExplainMethod, ExplainOptions, ExplanationScores } from '../../protocol/options';
import type { EvaluateExplanationsRequest, EvaluateExplanationsResult } from '../../protocol/engine';
import { EngineError } from '../errors';
import { throwIfCancelled, yieldToEventLoop, type JobContext } from '../jobContext';
import { createRandom } from '../util/random';
import type { Explainer, ExplainableModel, Pixels } from '../explain/explainer';
import { explainerFor, explainers } from '../explain/methods';
import { resolveExplainOptions } from '../explain/options';
import { loadImage, nearestImages, openRun, type ExplainableRun } from './explainRun';
import { scoreImagesOnDevice } from '../explain/onDevice';
import { cosine, cosineRows } from '../explain/target';
import { augmentedView } from '../explain/views';
import { averageDropIncrease } from '../explain/metrics/averageDrop';
import { consistencyTransforms, contrastiveConsistencyLoss, transformMap } from '../explain/metrics/consistency';
import { insertionDeletion, type PairScorer } from '../explain/metrics/insertionDeletion';
import { maxSensitivity } from '../explain/metrics/maxSensitivity';

// Stages of each insertion/deletion curve.
const curveSteps = 24;
// Max-sensitivity: noise draws, and the noise's half-width in [0, 1] pixel units (≈ the seed's 0.2 in normalised units).
const sensitivitySamples = 3;
const sensitivityRadius = 0.05;

export type EvaluateExplanationsJob = Omit<EvaluateExplanationsRequest, 'type' | 'id'>;

type Sums = Omit<ExplanationScores, 'method' | 'consistencyLoss'>;

/** Checks the method list: known, deduplicated, each able to explain a similarity. The random baseline is added once, last. */
export function evaluationMethods(methods: unknown): Explainer[] {
  if (!Array.isArray(methods) || methods.length === 0) {
    throw new EngineError('BAD_REQUEST', `Name at least one method to evaluate, e.g. gradcam,smoothgrad. Known: ${Object.keys(explainers).join(', ')}.`);
  }
  const chosen = [...new Set(methods)].map((method) => explainerFor(method)).filter((explainer) => explainer.method !== 'random');
  for (const explainer of chosen) {
    if (!explainer.targets.includes('similarity')) {
      throw new EngineError('BAD_REQUEST', `${explainer.method} explains a change of cluster, not the similarity of two images, so these metrics do not apply. Leave it out of --methods and look at it with "cluster-lens explain".`);
    }
  }
  return [...chosen, explainers.random];
}

/** cos(f(images_i), f(pairs_i)) per row of stacked images; `pairs` may be one image, compared with every row. */
export function pairedSimilarities(net: ExplainableModel, sizePx: number, batchSize: number): PairScorer {
  return async (images, pairs) => {
    const perImage = sizePx * sizePx * net.graphs.channels;
    const count = images.length / perImage;
    const batch = Math.max(1, Math.min(batchSize, count));
    const { features } = await scoreImagesOnDevice(net, images, count, sizePx, batch);
    const pairFeatures = (await scoreImagesOnDevice(net, pairs, pairs.length / perImage, sizePx, pairs.length === perImage ? 1 : batch)).features;
    return cosineRows(features, pairFeatures, count);
  };
}

async function pairFor(run: ExplainableRun, image: Pixels, position: number, pair: 'neighbour' | 'augmented', seed: number): Promise<Float32Array> {
  if (pair === 'augmented') return augmentedView(image, createRandom(seed), run.cropScale);
  const { dims, data } = run.index.features;
  const [nearest] = nearestImages(run, data.subarray(position * dims, (position + 1) * dims), 1, position);
  if (!nearest) throw new EngineError('BAD_REQUEST', 'The run has a single image, so there is no neighbour to pair it with. Use --pair augmented.');
  return (await loadImage(run, path.join(run.index.header.imagesDir, nearest.path))).pixels;
}

export async function evaluateExplanations(job: EvaluateExplanationsJob, context: JobContext): Promise<EvaluateExplanationsResult> {
  const startedAt = Date.now();
  const methods = evaluationMethods(job.methods);
  const pairKind = job.pair ?? 'neighbour';
  if (pairKind !== 'neighbour' && pairKind !== 'augmented') throw new EngineError('BAD_REQUEST', `Pair ${JSON.stringify(job.pair)} is not one of neighbour, augmented.`);
  if (!Number.isInteger(job.images) || job.images < 1) throw new EngineError('BAD_REQUEST', `The number of images must be a whole number ≥ 1, not ${JSON.stringify(job.images)}.`);
  const options = resolveExplainOptions(job.options);
  const seed = job.seed ?? 0;
  const run = await openRun(job.runDir, context);
  return evaluateOnRun(run, methods, job.images, pairKind, options, seed, context, startedAt);
}

async function evaluateOnRun(
  run: ExplainableRun,
  methods: Explainer[],
  images: number,
  pairKind: 'neighbour' | 'augmented',
  options: ExplainOptions,
  seed: number,
  context: JobContext,
  startedAt: number,
): Promise<EvaluateExplanationsResult> {
  const random = createRandom(seed);
  const records = run.index.header.records;
  const positions = random.shuffle(records.map((_, position) => position)).slice(0, Math.min(images, records.length));
  const score = pairedSimilarities(run.net, run.imageSizePx, options.batchSize);

  const sums = new Map<ExplainMethod, Sums>();
  const consistencyPairs = new Map<ExplainMethod, Map<string, { queries: Float32Array[]; keys: Float32Array[] }>>();
  for (const explainer of methods) {
    sums.set(explainer.method, {
      simultaneousInsertion: 0, simultaneousDeletion: 0, conditionalInsertion: 0, conditionalDeletion: 0,
      simultaneousAverageDrop: 0, simultaneousIncrease: 0, conditionalAverageDrop: 0, conditionalIncrease: 0,
      maxSensitivity: 0, consistencyCosine: 0, durationMsPerImage: 0,
    });
    consistencyPairs.set(explainer.method, new Map());
  }

  for (const [done, position] of positions.entries()) {
    const image = await loadImage(run, path.join(run.index.header.imagesDir, records[position].path));
    const pair = await pairFor(run, image, position, pairKind, seed + position);
    const transforms = consistencyTransforms(createRandom(seed + position));
    for (const [methodIndex, explainer] of methods.entries()) {
      throwIfCancelled(context.signal);
      context.progress({
        phase: 'explain',
        fraction: (done * methods.length + methodIndex) / (positions.length * methods.length),
        message: `Image ${done + 1}/${positions.length}: ${explainer.method}`,
      });
      const mapsOf = (x: Float32Array, y: Float32Array) => explainer.explain({ net: run.net, image: { ...image, pixels: x }, target: { kind: 'similarity', pair: y }, options, seed: seed + position, signal: context.signal });
      const explainStartedAt = performance.now();
      const explanation = await mapsOf(image.pixels, pair);
      const durationMs = performance.now() - explainStartedAt;
      const pairHeatmap = explanation.pairHeatmap!;
      const curves = await insertionDeletion(score, image, pair, explanation.heatmap, pairHeatmap, curveSteps);
      const drops = await averageDropIncrease(score, image.pixels, pair, explanation.heatmap, pairHeatmap);
      const sensitivity = await maxSensitivity(mapsOf, image.pixels, pair, explanation, sensitivitySamples, sensitivityRadius, createRandom(seed + position));
      let consistency = 0;
      for (const transform of transforms) {
        const mapOfTransformed = await mapsOf(transform.apply(image.pixels, image.sizePx, image.channels), pair);
        const transformedMap = transformMap(explanation.heatmap, transform);
        consistency += cosine(transformedMap, mapOfTransformed.heatmap) / transforms.length;
        const perTransform = consistencyPairs.get(explainer.method)!;
        if (!perTransform.has(transform.name)) perTransform.set(transform.name, { queries: [], keys: [] });
        perTransform.get(transform.name)!.queries.push(transformedMap);
        perTransform.get(transform.name)!.keys.push(mapOfTransformed.heatmap);
      }
      const sum = sums.get(explainer.method)!;
      sum.simultaneousInsertion += curves.simultaneousInsertion;
      sum.simultaneousDeletion += curves.simultaneousDeletion;
      sum.conditionalInsertion += curves.conditionalInsertion;
      sum.conditionalDeletion += curves.conditionalDeletion;
      sum.simultaneousAverageDrop += drops.simultaneousDrop;
      sum.simultaneousIncrease += drops.simultaneousIncrease;
      sum.conditionalAverageDrop += drops.conditionalDrop;
      sum.conditionalIncrease += drops.conditionalIncrease;
      sum.maxSensitivity += sensitivity;
      sum.consistencyCosine += consistency;
      sum.durationMsPerImage += durationMs;
      await yieldToEventLoop();
    }
  }

  const count = positions.length;
  const rows: ExplanationScores[] = methods.map((explainer) => {
    const sum = sums.get(explainer.method)!;
    const perTransform = [...consistencyPairs.get(explainer.method)!.values()];
    const consistencyLoss = perTransform.reduce((total, { queries, keys }) => total + contrastiveConsistencyLoss(queries, keys), 0) / Math.max(1, perTransform.length);
    const mean = Object.fromEntries(Object.entries(sum).map(([name, value]) => [name, value / count])) as Sums;
    return { method: explainer.method, ...mean, consistencyLoss };
  });
  context.progress({ phase: 'explain', fraction: 1, message: `Evaluated ${methods.length} methods on ${count} images` });
  return { kind: 'evaluate-explanations', runDir: run.runDir, images: count, pair: pairKind, rows, durationMs: Date.now() - startedAt };
}
