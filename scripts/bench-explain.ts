// Times every explanation method on wasm for a 96 px image on the default backbone, and checks the budgets of
// issue 5: Grad-CAM ≤ 150 ms, a 300-step counterfactual ≤ 10 s, occlusion batched (never one forward pass per patch).
// Run: npx tsx scripts/bench-explain.ts [--json] [--repeats N]
// The model is freshly initialised (timings do not depend on the weights); the images are two sample pictures.
// Each figure is the median of several runs, with the best run beside it: on a shared machine the best is the
// steadier measure of what the code costs.

import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, initBackend } from '../src/engine/runtime/tfjs/backend';
import { defaultTrainOptions } from '../src/engine/config';
import { decodeImage } from '../src/engine/data/decode';
import { counterfactual } from '../src/engine/explain/counterfactual';
import type { ExplainableModel, Target } from '../src/engine/explain/explainer';
import { explainers } from '../src/engine/explain/methods';
import { swavExplainable } from '../src/engine/explain/network';
import { resolveExplainOptions } from '../src/engine/explain/options';
import { occlusionGeometry, patchPositions } from '../src/engine/explain/views';
import { createModel, disposeModel, type ModelSpec } from '../src/engine/model/model';
import { createRandom } from '../src/engine/util/random';
import type { ExplainMethod } from '../src/protocol/options';

const imageSizePx = 96;
const gradCamBudgetMs = 150;
const counterfactualBudgetMs = 10_000;

interface Row {
  method: ExplainMethod;
  target: Target['kind'];
  medianMs: number;
  bestMs: number;
  forwardPasses: number;
  note?: string;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Counts calls to the Grad-CAM layer: every forward pass goes through it once. */
function counting(net: ExplainableModel): ExplainableModel & { passes: number } {
  const counted = { ...net, passes: 0 };
  counted.featureMap = (images) => {
    counted.passes++;
    return net.featureMap(images);
  };
  return counted;
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const repeatsFlag = process.argv.indexOf('--repeats');
  const repeats = repeatsFlag > 0 ? Number(process.argv[repeatsFlag + 1]) : 5;
  const backend = await initBackend('wasm');
  const defaults = defaultTrainOptions;
  const spec: ModelSpec = {
    channels: 3,
    stemStride: imageSizePx >= 48 ? 2 : 1,
    width: defaults.width,
    blocksPerStage: defaults.blocksPerStage,
    projectionHiddenDim: defaults.projectionHiddenDim,
    projectionDim: defaults.projectionDim,
    prototypes: defaults.prototypes,
    inputMean: [0.5, 0.5, 0.5],
    inputStd: [0.25, 0.25, 0.25],
  };
  const model = createModel(spec, createRandom(0));
  const explainable = swavExplainable(model, defaults.temperature);
  const net = counting(explainable);
  const sample = path.resolve(__dirname, '../sample/fashion-mnist');
  const load = async (file: string) => {
    const pixels = await decodeImage(path.join(sample, file), imageSizePx, 3);
    return tf.tidy(() => tf.div(tf.tensor4d(Float32Array.from(pixels), [1, imageSizePx, imageSizePx, 3]), 255) as tf.Tensor4D);
  };
  const image = await load('7-sneaker/00009.png');
  const pair = await load('7-sneaker/01019.png');
  const options = resolveExplainOptions();
  const rows: Row[] = [];

  const time = async (method: ExplainMethod, target: Target, runs: number): Promise<Row> => {
    await explainers[method].explain({ net, image, target, options, seed: 0 }); // warm-up: XNNPACK sets up each shape once
    const durations: number[] = [];
    let passes = 0;
    for (let run = 0; run < runs; run++) {
      const before = net.passes;
      const startedAt = performance.now();
      await explainers[method].explain({ net, image, target, options, seed: run });
      durations.push(performance.now() - startedAt);
      passes = net.passes - before;
    }
    process.stderr.write(`${method}: ${median(durations).toFixed(1)} ms\n`);
    return { method, target: target.kind, medianMs: median(durations), bestMs: Math.min(...durations), forwardPasses: passes };
  };

  const prototype: Target = { kind: 'prototype', prototype: 0 };
  const similarity: Target = { kind: 'similarity', pair };
  for (const method of ['gradcam', 'gradcam++', 'layercam'] as const) rows.push(await time(method, prototype, repeats * 4));
  for (const method of ['interaction-cam-mean', 'interaction-cam-max', 'input-x-gradient'] as const) rows.push(await time(method, similarity, repeats * 2));
  for (const method of ['conditional-occlusion', 'context-agnostic-occlusion', 'pairwise-occlusion', 'smoothgrad', 'averaged-transforms', 'pixel-invariance'] as const) {
    rows.push(await time(method, similarity, repeats));
  }
  const { patchPx, stridePx } = occlusionGeometry(imageSizePx, options.occlusionPatchPx, options.occlusionStridePx);
  const patches = patchPositions(imageSizePx, patchPx, stridePx).length ** 2;
  const occlusion = rows.find((row) => row.method === 'conditional-occlusion')!;
  occlusion.note = `${2 * patches} occluded images (${patchPx} px squares every ${stridePx} px, both images) in ${occlusion.forwardPasses} forward passes`;

  // A margin of 1 can never hold, so the counterfactual runs all of its steps.
  const counterfactualRuns: number[] = [];
  let steps = 0;
  for (let run = 0; run < Math.max(2, Math.ceil(repeats / 2)); run++) {
    const startedAt = performance.now();
    steps = (await counterfactual(net, image, 1, { ...options, counterfactualMargin: 1 })).steps;
    counterfactualRuns.push(performance.now() - startedAt);
    process.stderr.write(`counterfactual: ${counterfactualRuns.at(-1)!.toFixed(0)} ms\n`);
  }
  const counterfactualMs = median(counterfactualRuns);
  rows.push({
    method: 'counterfactual',
    target: 'prototype',
    medianMs: counterfactualMs,
    bestMs: Math.min(...counterfactualRuns),
    forwardPasses: steps + 3,
    note: `${steps} steps, ${(counterfactualMs / steps).toFixed(1)} ms a step`,
  });

  const gradCamMs = rows.find((row) => row.method === 'gradcam')!.medianMs;
  const checks = {
    gradCamMs,
    gradCamWithinBudget: gradCamMs <= gradCamBudgetMs,
    counterfactualSteps: steps,
    counterfactualMs,
    counterfactualWithinBudget: steps === options.counterfactualSteps && counterfactualMs <= counterfactualBudgetMs,
    occlusionImages: 2 * patches,
    occlusionForwardPasses: occlusion.forwardPasses,
    occlusionBatched: occlusion.forwardPasses < 2 * patches / 8,
  };
  explainable.dispose();
  disposeModel(model);
  tf.dispose([image, pair]);

  if (json) {
    process.stdout.write(`${JSON.stringify({ backend: backend.name, imageSizePx, spec: { width: spec.width, blocksPerStage: spec.blocksPerStage, prototypes: spec.prototypes }, rows, checks })}\n`);
    return;
  }
  const lines = [
    `Explanations on ${describeBackend(backend)}; ${imageSizePx} px RGB image, default backbone (width ${spec.width}, stages [${spec.blocksPerStage}], ${spec.prototypes} prototypes)`,
    `${'method'.padEnd(28)}${'target'.padEnd(12)}${'median ms'.padStart(10)}${'best ms'.padStart(10)}${'passes'.padStart(8)}  note`,
    ...rows.map((row) => `${row.method.padEnd(28)}${row.target.padEnd(12)}${row.medianMs.toFixed(1).padStart(10)}${row.bestMs.toFixed(1).padStart(10)}${String(row.forwardPasses).padStart(8)}  ${row.note ?? ''}`),
    '',
    `Grad-CAM ${gradCamMs.toFixed(1)} ms (budget ${gradCamBudgetMs} ms): ${checks.gradCamWithinBudget ? 'ok' : 'OVER'}`,
    `300-step counterfactual ${(counterfactualMs / 1000).toFixed(2)} s (budget ${counterfactualBudgetMs / 1000} s): ${checks.counterfactualWithinBudget ? 'ok' : 'OVER'}`,
    `Occlusion: ${checks.occlusionImages} occluded images in ${checks.occlusionForwardPasses} forward passes: ${checks.occlusionBatched ? 'batched' : 'NOT BATCHED'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
});
