// The `explain` request: one image of a run, one method, one target; maps as numbers and PNGs.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ExplainedTarget, ExplainImages, ExplainTarget, Heatmap } from '../../protocol/options';
import type { ExplainRequest, ExplainResult } from '../../protocol/engine';
import { EngineError } from '../errors';
import { currentDevice, ranOnKind } from '../runtime/device';
import { throwIfCancelled, type JobContext } from '../jobContext';
import { createRandom } from '../util/random';
import type { Explainer, Pixels, Target } from '../explain/explainer';
import { explainerFor } from '../explain/methods';
import { resolveExplainOptions } from '../explain/options';
import { renderExplanation, renderImage, pngFileNames } from '../explain/render';
import { clusterDonors, describeImage, loadImage, locateImage, nearestImages, nearestOtherCluster, openRun, topPrototypes, type ExplainableRun, type ImageSummary } from './explainRun';
import { cosine, featuresOf } from '../explain/target';
import { augmentedView } from '../explain/views';

const topPrototypeCount = 5;
const neighbourCount = 8;

export type ExplainJob = Omit<ExplainRequest, 'type' | 'id'>;

/** Checks a target from the wire before anything is loaded; BAD_REQUEST names what is wrong. */
export function checkTarget(target: unknown, explainer: Explainer, prototypes?: number): void {
  if (target === undefined) return;
  const kinds = ['assigned', 'prototype', 'neighbour', 'image', 'augmented'];
  const value = target as Partial<Record<string, unknown>>;
  if (typeof target !== 'object' || target === null || !kinds.includes(value.kind as string)) {
    throw new EngineError('BAD_REQUEST', `Unknown explanation target ${JSON.stringify(target)}. Use one of the kinds ${kinds.join(', ')}.`);
  }
  const wantsCluster = value.kind === 'assigned' || value.kind === 'prototype';
  if (!explainer.targets.includes(wantsCluster ? 'prototype' : 'similarity')) {
    throw new EngineError(
      'BAD_REQUEST',
      wantsCluster
        ? `${explainer.method} explains the similarity of two images, not a cluster. Give it a second image (--pair) instead of a cluster.`
        : `${explainer.method} explains a cluster, not the similarity of two images. Give it a target cluster (--target) instead of a pair.`,
    );
  }
  if (value.kind === 'prototype' && prototypes !== undefined) {
    const prototype = value.prototype;
    if (typeof prototype !== 'number' || !Number.isInteger(prototype) || prototype < 0 || prototype >= prototypes) {
      throw new EngineError('BAD_REQUEST', `Cluster ${JSON.stringify(prototype)} does not exist: this run has ${prototypes} clusters, numbered 0 to ${prototypes - 1}. Pick one of them.`);
    }
  }
  if (value.kind === 'neighbour' && value.rank !== undefined && (typeof value.rank !== 'number' || !Number.isInteger(value.rank) || value.rank < 1)) {
    throw new EngineError('BAD_REQUEST', `Neighbour rank ${JSON.stringify(value.rank)} must be a whole number ≥ 1 (1 = the nearest image).`);
  }
  if (value.kind === 'image' && (typeof value.image !== 'string' || value.image === '')) {
    throw new EngineError('BAD_REQUEST', 'An image target needs the path of the second image.');
  }
}

interface ResolvedTarget {
  target: Target;
  described: ExplainedTarget;
  pairPixels?: Float32Array;
}

/** Turns the request's target (or the method's default) into a prototype or a pair image. */
async function resolveTarget(run: ExplainableRun, explainer: Explainer, requested: ExplainTarget | undefined, image: Pixels, summary: ImageSummary, position: number, seed: number): Promise<ResolvedTarget> {
  const target: ExplainTarget =
    requested ??
    (explainer.defaultTarget === 'assigned'
      ? { kind: 'assigned' }
      : explainer.defaultTarget === 'neighbour'
        ? { kind: 'neighbour', rank: 1 }
        : { kind: 'prototype', prototype: nearestOtherCluster(run, summary.probabilities, summary.cluster) });
  switch (target.kind) {
    case 'assigned':
    case 'prototype': {
      const prototype = target.kind === 'assigned' ? summary.cluster : target.prototype;
      return {
        target: { kind: 'prototype', prototype },
        described: { kind: 'prototype', prototype, assigned: prototype === summary.cluster, score: summary.scores[prototype], probability: summary.probabilities[prototype] },
      };
    }
    case 'neighbour':
    case 'image': {
      let pairPath: string;
      if (target.kind === 'neighbour') {
        const rank = target.rank ?? 1;
        const hits = nearestImages(run, summary.features, rank, position);
        if (hits.length < rank) throw new EngineError('BAD_REQUEST', `The run has only ${hits.length} other images; neighbour ${rank} does not exist.`);
        pairPath = path.join(run.index.header.imagesDir, hits[rank - 1].path);
      } else {
        pairPath = locateImage(run, target.image).absolute;
      }
      const pair = await loadImage(run, pairPath);
      return await withSimilarity(run, image, pair, target.kind, pairPath);
    }
    case 'augmented': {
      const pair = { ...image, pixels: augmentedView(image, createRandom(target.seed ?? seed), run.cropScale) };
      return await withSimilarity(run, image, pair, 'augmented');
    }
  }
}

async function withSimilarity(run: ExplainableRun, image: Pixels, pair: Pixels, kind: 'neighbour' | 'image' | 'augmented', pairImage?: string): Promise<ResolvedTarget> {
  const similarity = cosine(await featuresOf(run.net, image), await featuresOf(run.net, pair));
  return {
    target: { kind: 'similarity', pair: pair.pixels },
    described: { kind: 'similarity', pair: kind, pairImage, similarity },
    pairPixels: pair.pixels,
  };
}

function heatmapOf(values: Float32Array, sizePx: number): Heatmap {
  return { widthPx: sizePx, heightPx: sizePx, values: Array.from(values, (value) => Math.round(value * 1e4) / 1e4) };
}

/** Explains one image of a run with one method. */
export async function explainImage(job: ExplainJob, context: JobContext): Promise<ExplainResult> {
  const explainer = explainerFor(job.method);
  checkTarget(job.target, explainer);
  const options = resolveExplainOptions(job.options);
  const seed = job.seed ?? 0;
  const run = await openRun(job.runDir, context);
  checkTarget(job.target, explainer, run.net.prototypes);
  const { absolute, position } = locateImage(run, job.image);
  context.progress({ phase: 'explain', fraction: 0, message: `Explaining ${path.basename(absolute)} with ${explainer.method}` });
  const image = await loadImage(run, absolute);
  const summary = await describeImage(run.net, image);
  const resolved = await resolveTarget(run, explainer, job.target, image, summary, position, seed);
  throwIfCancelled(context.signal);
  const startedAt = performance.now();
  const explanation = await explainer.explain({
    net: run.net,
    image,
    target: resolved.target,
    options,
    seed,
    signal: context.signal,
    log: context.log,
    donors: (cluster, count) => clusterDonors(run, summary.features, cluster, count, position),
    progress: (fraction, message) => context.progress({ phase: 'explain', fraction, message }),
  });
  const durationMs = performance.now() - startedAt;
  const imagePixels = image.pixels;
  const outcome = explanation.counterfactual;
  const newSummary = outcome ? topPrototypes(outcome.probabilities, outcome.scores, topPrototypeCount) : undefined;
  const result: ExplainResult = {
    // Where the graphs ran (the random map runs none).
    ...ranOnKind(explanation.device ?? currentDevice().device),
    kind: 'explain',
    method: explainer.method,
    runDir: run.runDir,
    image: absolute,
    imageSizePx: run.imageSizePx,
    cluster: summary.cluster,
    topPrototypes: topPrototypes(summary.probabilities, summary.scores, topPrototypeCount),
    neighbours: nearestImages(run, summary.features, neighbourCount, position),
    target: resolved.described,
    heatmap: heatmapOf(explanation.heatmap, run.imageSizePx),
    pairHeatmap: explanation.pairHeatmap ? heatmapOf(explanation.pairHeatmap, run.imageSizePx) : undefined,
    counterfactual: outcome && {
      kind: outcome.kind,
      originalCluster: summary.cluster,
      originalClusterProbability: summary.probabilities[summary.cluster],
      targetCluster: outcome.targetCluster,
      newCluster: newSummary![0].prototype,
      valid: outcome.valid,
      originalTargetProbability: outcome.originalProbabilities[outcome.targetCluster],
      targetProbability: outcome.probabilities[outcome.targetCluster],
      topPrototypes: newSummary!,
      donors: outcome.donors?.map(({ pixels: _pixels, ...donor }) => donor),
      regions: outcome.regions,
      l1Distance: outcome.l1Distance,
      l2Distance: outcome.l2Distance,
      meanAbsoluteChange: outcome.meanAbsoluteChange,
      changedPixelShare: outcome.changedPixelShare,
      steps: outcome.steps,
      converged: outcome.converged,
      durationMs: outcome.durationMs,
      search: outcome.search,
    },
    durationMs,
  };
  if (job.outDir || job.inlinePngs) {
    const rendered = await renderExplanation(
      {
        image: imagePixels,
        channels: run.channels,
        imageSizePx: run.imageSizePx,
        heatmap: explanation.heatmap,
        pairImage: resolved.pairPixels,
        pairHeatmap: explanation.pairHeatmap,
        counterfactual: outcome?.pixels,
        heatmapIsDiff: outcome !== undefined,
      },
      options,
    );
    if (job.inlinePngs) result.pngs = Object.fromEntries(Object.entries(rendered).map(([name, bytes]) => [name, bytes.toString('base64')])) as ExplainImages;
    if (job.outDir) result.files = await writePngs(path.resolve(job.outDir), rendered);
    // The donors as the model sees them, for the panel's thumbnails with the borrowed regions outlined.
    for (const [rank, donor] of (outcome?.donors ?? []).entries()) {
      const bytes = await renderImage(donor.pixels, run.channels, run.imageSizePx, options);
      const summaryDonor = result.counterfactual!.donors![rank];
      if (job.inlinePngs) summaryDonor.png = bytes.toString('base64');
      if (job.outDir) {
        summaryDonor.file = path.join(path.resolve(job.outDir), `donor-${rank + 1}.png`);
        await fs.writeFile(summaryDonor.file, bytes);
      }
    }
  }
  context.progress({ phase: 'explain', fraction: 1, message: `Explained in ${durationMs.toFixed(0)} ms` });
  return result;
}

async function writePngs(outDir: string, rendered: Partial<Record<keyof ExplainImages, Buffer>>): Promise<ExplainImages> {
  try {
    await fs.mkdir(outDir, { recursive: true });
  } catch (error) {
    throw new EngineError('BAD_REQUEST', `Cannot create the output folder ${outDir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Choose a folder you can write to.`);
  }
  const files: ExplainImages = {};
  for (const [name, bytes] of Object.entries(rendered) as [keyof ExplainImages, Buffer][]) {
    const file = path.join(outDir, pngFileNames[name]);
    await fs.writeFile(file, bytes);
    files[name] = file;
  }
  return files;
}
