// The `evaluate-counterfactuals` request: N images of a run, each moved toward its nearest other cluster by
// every counterfactual method (validity, changed pixels, L1, time), and the explain panel's Grad-CAM scored on
// the assigned cluster by deletion and insertion against a random map, image by image.
import path from 'node:path';
import type { ExplainMethod, ExplainOptions } from '../../protocol/options';
import type { ClusterMapFaithfulness, CounterfactualScores, EvaluateCounterfactualsRequest, EvaluateCounterfactualsResult } from '../../protocol/engine';
import { EngineError } from '../errors';
import { throwIfCancelled, yieldToEventLoop, type JobContext } from '../jobContext';
import { ranOnKind } from '../runtime/device';
import { createRandom } from '../util/random';
import type { ExplainableModel, Explainer, Pixels } from '../explain/explainer';
import { explainerFor, explainers } from '../explain/methods';
import { resolveExplainOptions } from '../explain/options';
import { randomMap } from '../explain/randomMap';
import { clusterDonors, describeImage, loadImage, nearestOtherCluster, openRun } from './explainRun';
import { scorerFor, type ClusterScorer } from '../explain/scorer';
import { clusterCurveStages, probabilityArea, type Removal } from '../explain/metrics/clusterDeletion';
import { gaussianBlur, insertionBlurSigma } from '../explain/metrics/insertionDeletion';

export const defaultCounterfactualMethods: ExplainMethod[] = ['counterfactual', 'counterfactual-mask', 'counterfactual-pixel'];
// Stages of each deletion or insertion curve.
const curveSteps = 16;
const removals: Removal[] = ['black', 'road'];

export type EvaluateCounterfactualsJob = Omit<EvaluateCounterfactualsRequest, 'type' | 'id'>;

/** Known counterfactual methods, once each; BAD_REQUEST names any other. */
export function counterfactualMethods(methods: unknown): Explainer[] {
  if (methods === undefined) return defaultCounterfactualMethods.map((method) => explainers[method]);
  if (!Array.isArray(methods) || methods.length === 0) throw new EngineError('BAD_REQUEST', `Name at least one counterfactual method: ${defaultCounterfactualMethods.join(', ')}.`);
  return [...new Set(methods)].map((method) => {
    const explainer = explainerFor(method);
    if (!explainer.method.startsWith('counterfactual')) throw new EngineError('BAD_REQUEST', `${explainer.method} is not a counterfactual method. Choose from ${defaultCounterfactualMethods.join(', ')}.`);
    return explainer;
  });
}

/** The q-quantile (0–1) of `values` by linear interpolation; NaN when empty. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const position = q * (sorted.length - 1);
  const below = Math.floor(position);
  const above = Math.min(sorted.length - 1, below + 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
}

/** Per image: the deletion and insertion areas of Grad-CAM's map and of the random map. */
interface MapAreas {
  gradCam: number[];
  random: number[];
  gradCamInsertion: number[];
  randomInsertion: number[];
}

interface MethodRecord {
  valid: boolean[];
  changed: number[];
  l1: number[];
  durationMs: number[];
  regions: number[];
}

export async function evaluateCounterfactuals(job: EvaluateCounterfactualsJob, context: JobContext): Promise<EvaluateCounterfactualsResult> {
  const startedAt = Date.now();
  const methods = counterfactualMethods(job.methods);
  if (!Number.isInteger(job.images) || job.images < 1) throw new EngineError('BAD_REQUEST', `The number of images must be a whole number ≥ 1, not ${JSON.stringify(job.images)}.`);
  const options = resolveExplainOptions(job.options);
  const seed = job.seed ?? 0;
  const run = await openRun(job.runDir, context);
  const records = run.index.header.records;
  const positions = createRandom(seed).shuffle(records.map((_, position) => position)).slice(0, Math.min(job.images, records.length));
  const scorer = await scorerFor(run.net, run.imageSizePx, run.channels);
  const perMethod = new Map<ExplainMethod, MethodRecord>(methods.map((explainer) => [explainer.method, { valid: [], changed: [], l1: [], durationMs: [], regions: [] }]));
  const faithfulness = new Map<Removal, MapAreas>(removals.map((removal) => [removal, { gradCam: [], random: [], gradCamInsertion: [], randomInsertion: [] }]));
  const steps = methods.length + 1;
  for (const [done, position] of positions.entries()) {
    const image = await loadImage(run, path.join(run.index.header.imagesDir, records[position].path));
    const summary = await describeImage(run.net, image);
    const target = nearestOtherCluster(run, summary.probabilities, summary.cluster);
    for (const [methodIndex, explainer] of methods.entries()) {
      throwIfCancelled(context.signal);
      context.progress({ phase: 'evaluate', fraction: (done * steps + methodIndex) / (positions.length * steps), message: `Image ${done + 1}/${positions.length}: ${explainer.method} toward cluster ${target}` });
      const explanation = await explainer.explain({
        net: run.net,
        image,
        target: { kind: 'prototype', prototype: target },
        options,
        seed: seed + position,
        signal: context.signal,
        log: context.log,
        donors: (cluster, count) => clusterDonors(run, summary.features, cluster, count, position),
      });
      const outcome = explanation.counterfactual!;
      const record = perMethod.get(explainer.method)!;
      record.valid.push(outcome.valid);
      record.changed.push(outcome.changedPixelShare);
      record.l1.push(outcome.l1Distance);
      record.durationMs.push(outcome.durationMs);
      if (outcome.regions) record.regions.push(outcome.regions.length);
      await yieldToEventLoop();
    }
    throwIfCancelled(context.signal);
    context.progress({ phase: 'evaluate', fraction: (done * steps + methods.length) / (positions.length * steps), message: `Image ${done + 1}/${positions.length}: Grad-CAM deletion and insertion` });
    await scoreGradCam(run.net, image, summary.cluster, seed + position, scorer, options, faithfulness);
  }
  const rows: CounterfactualScores[] = methods.map((explainer) => {
    const record = perMethod.get(explainer.method)!;
    return {
      method: explainer.method,
      validity: record.valid.filter(Boolean).length / Math.max(1, record.valid.length),
      medianChangedPixelShare: quantile(record.changed, 0.5),
      p90ChangedPixelShare: quantile(record.changed, 0.9),
      medianL1Distance: quantile(record.l1, 0.5),
      medianDurationMs: quantile(record.durationMs, 0.5),
      medianRegions: record.regions.length > 0 ? quantile(record.regions, 0.5) : undefined,
    };
  });
  const gradCam: ClusterMapFaithfulness[] = removals.map((removal) => {
    const areas = faithfulness.get(removal)!;
    const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
    const share = (wins: boolean[]) => wins.filter(Boolean).length / Math.max(1, wins.length);
    return {
      removal,
      gradCamDeletion: mean(areas.gradCam),
      randomDeletion: mean(areas.random),
      gradCamInsertion: mean(areas.gradCamInsertion),
      randomInsertion: mean(areas.randomInsertion),
      deletionBelowRandom: share(areas.gradCam.map((area, i) => area < areas.random[i])),
      insertionAboveRandom: share(areas.gradCamInsertion.map((area, i) => area > areas.randomInsertion[i])),
    };
  });
  context.progress({ phase: 'evaluate', fraction: 1, message: `Evaluated ${methods.length} counterfactual methods on ${positions.length} images` });
  return { ...ranOnKind(scorer.device), kind: 'evaluate-counterfactuals', runDir: run.runDir, images: positions.length, rows, gradCam, durationMs: Date.now() - startedAt };
}

/**
 * Grad-CAM's and a random map's deletion and insertion areas on the assigned cluster, for each way of removing
 * pixels: every stage of the image's curves scored in one batched call of the forward graph.
 */
async function scoreGradCam(
  net: ExplainableModel,
  image: Pixels,
  cluster: number,
  seed: number,
  scorer: ClusterScorer,
  options: ExplainOptions,
  into: Map<Removal, MapAreas>,
): Promise<void> {
  const target = { kind: 'prototype' as const, prototype: cluster };
  const maps = {
    gradCam: (await explainers.gradcam.explain({ net, image, target, options, seed })).heatmap,
    random: randomMap(image, seed),
  };
  const { sizePx, channels, pixels } = image;
  const blurred = gaussianBlur(pixels, sizePx, channels, insertionBlurSigma(sizePx));
  const curves: { removal: Removal; name: 'gradCam' | 'random'; kind: 'deletion' | 'insertion'; stages: Float32Array }[] = [];
  for (const removal of removals) {
    for (const [name, heatmap] of Object.entries(maps) as ['gradCam' | 'random', Float32Array][]) {
      // The same noise for both maps: the maps, not the draws, make the difference.
      curves.push({ removal, name, kind: 'deletion', stages: clusterCurveStages(pixels, blurred, heatmap, sizePx, channels, curveSteps, 'deletion', removal, createRandom(seed)) });
      curves.push({ removal, name, kind: 'insertion', stages: clusterCurveStages(pixels, blurred, heatmap, sizePx, channels, curveSteps, 'insertion', removal, createRandom(seed + 1)) });
    }
  }
  const perCurve = curveSteps + 1;
  const batch = new Float32Array(curves.reduce((total, curve) => total + curve.stages.length, 0));
  curves.forEach((curve, index) => batch.set(curve.stages, index * curve.stages.length));
  const { probabilities } = await scorer.score(batch, curves.length * perCurve);
  const rows = perCurve * scorer.prototypes;
  curves.forEach(({ removal, name, kind }, index) => {
    const key = kind === 'deletion' ? name : name === 'gradCam' ? 'gradCamInsertion' : 'randomInsertion';
    into.get(removal)![key].push(probabilityArea(probabilities.subarray(index * rows, (index + 1) * rows), scorer.prototypes, cluster));
  });
}
