// Per-method explanation latency: times every explanation method on onnxruntime's CPU provider (or, with
// --device gpu, the GPU) for a 96 px image on the default backbone, and checks the budgets of issue 5: Grad-CAM
// ≤ 150 ms, a 300-step counterfactual ≤ 10 s, occlusion batched (never one graph run per patch).
// Run: npx tsx scripts/bench-explain.ts [--json] [--repeats N] [--size PX] [--device cpu|gpu|auto]
// The model is freshly initialised (timings do not depend on the weights); the images are two sample pictures.
// Each figure is the median of several runs, with the best run beside it: on a shared machine the best is the
// steadier measure of what the code costs. "first" is the warm-up call, which builds the method's graphs and opens
// their sessions; "runs" counts onnxruntime session runs (each a batch of images) in one call, "images" the
// images they carried (padding included).

import path from 'node:path';
import { defaultTrainOptions } from '../src/engine/config';
import { decodeImage } from '../src/engine/data/decode';
import { counterfactual } from '../src/engine/explain/counterfactual';
import type { Pixels, Target } from '../src/engine/explain/explainer';
import { explainers } from '../src/engine/explain/methods';
import { closeExplainSessions, ownExplainable } from '../src/engine/explain/onDevice';
import { resolveExplainOptions } from '../src/engine/explain/options';
import { occlusionGeometry, patchPositions } from '../src/engine/explain/views';
import { createModel, disposeModel, type ModelSpec } from '../src/engine/model/model';
import { describeDevice, useDevice } from '../src/engine/runtime/device';
import { explainGraphNames } from '../src/engine/runtime/explainGraph';
import { OrtModel } from '../src/engine/runtime/session';
import { createRandom } from '../src/engine/util/random';
import type { DevicePreference, ExplainMethod } from '../src/protocol/options';

const gradCamBudgetMs = 150;
const counterfactualBudgetMs = 10_000;

interface Row {
  method: ExplainMethod;
  target: Target['kind'];
  medianMs: number;
  bestMs: number;
  firstMs: number;
  /** Session runs in one call. */
  graphRuns: number;
  /** Images those runs carried (padding included). */
  graphImages: number;
  note?: string;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Counts every onnxruntime session run, and the images it carried (the first dimension of its images input). */
const counter = { runs: 0, images: 0 };
const run = OrtModel.prototype.run;
OrtModel.prototype.run = function (this: OrtModel, inputs, outputs) {
  counter.runs++;
  counter.images += inputs[explainGraphNames.images]?.dims[0] ?? 0;
  return run.call(this, inputs, outputs);
};

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const flagText = (name: string, fallback: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : fallback);
  const flag = (name: string, fallback: number) => Number(flagText(name, String(fallback)));
  const repeats = flag('repeats', 5);
  const imageSizePx = flag('size', 96);
  // Every method runs its onnxruntime graphs on the CPU provider (--device gpu: on the GPU the device ladder finds).
  const device = await useDevice(flagText('device', 'cpu') as DevicePreference);
  const defaults = defaultTrainOptions;
  const spec: ModelSpec = {
    channels: 3,
    stemStride: imageSizePx >= 48 ? 2 : 1,
    width: defaults.width,
    blocksPerStage: defaults.blocksPerStage,
    architecture: defaults.architecture,
    projectionHiddenDim: defaults.projectionHiddenDim,
    projectionDim: defaults.projectionDim,
    prototypes: defaults.prototypes,
    inputMean: [0.5, 0.5, 0.5],
    inputStd: [0.25, 0.25, 0.25],
  };
  const model = createModel(spec, createRandom(0));
  const net = ownExplainable(model, defaults.temperature);
  const sample = path.resolve(__dirname, '../sample/fashion-mnist');
  const load = async (file: string): Promise<Pixels> => {
    const pixels = await decodeImage(path.join(sample, file), imageSizePx, 3);
    return { pixels: Float32Array.from(pixels, (value) => value / 255), sizePx: imageSizePx, channels: 3 };
  };
  const image = await load('7-sneaker/00009.png');
  const pair = await load('7-sneaker/01019.png');
  const options = resolveExplainOptions();
  const rows: Row[] = [];

  const time = async (method: ExplainMethod, target: Target, runs: number): Promise<Row> => {
    const openedAt = performance.now();
    await explainers[method].explain({ net, image, target, options, seed: 0 }); // warm-up: builds the graphs, opens the sessions
    const firstMs = performance.now() - openedAt;
    const durations: number[] = [];
    let graphRuns = 0;
    let graphImages = 0;
    for (let repeat = 0; repeat < runs; repeat++) {
      const before = { ...counter };
      const startedAt = performance.now();
      await explainers[method].explain({ net, image, target, options, seed: repeat });
      durations.push(performance.now() - startedAt);
      graphRuns = counter.runs - before.runs;
      graphImages = counter.images - before.images;
    }
    process.stderr.write(`${method}: ${median(durations).toFixed(1)} ms\n`);
    return { method, target: target.kind, medianMs: median(durations), bestMs: Math.min(...durations), firstMs, graphRuns, graphImages };
  };

  const prototype: Target = { kind: 'prototype', prototype: 0 };
  const similarity: Target = { kind: 'similarity', pair: pair.pixels };
  for (const method of ['gradcam', 'gradcam++', 'layercam'] as const) rows.push(await time(method, prototype, repeats * 4));
  for (const method of ['interaction-cam-mean', 'interaction-cam-max', 'input-x-gradient'] as const) rows.push(await time(method, similarity, repeats * 2));
  for (const method of ['conditional-occlusion', 'context-agnostic-occlusion', 'pairwise-occlusion', 'smoothgrad', 'averaged-transforms', 'pixel-invariance'] as const) {
    rows.push(await time(method, similarity, repeats));
  }
  const { patchPx, stridePx } = occlusionGeometry(imageSizePx, options.occlusionPatchPx, options.occlusionStridePx);
  const patches = patchPositions(imageSizePx, patchPx, stridePx).length ** 2;
  const occlusion = rows.find((row) => row.method === 'conditional-occlusion')!;
  occlusion.note = `${2 * patches} occluded images (${patchPx} px squares every ${stridePx} px, both images) in ${occlusion.graphRuns} graph runs`;

  // A margin of 1 can never hold, so the counterfactual runs all of its steps (one graph run each, and one to score the result).
  const counterfactualOptions = { ...options, counterfactualMargin: 1 };
  const pixelCounterfactual = () => counterfactual(net.graphs, image.pixels, imageSizePx, net.temperature, 1, counterfactualOptions);
  const counterfactualOpenedAt = performance.now();
  await pixelCounterfactual();
  const counterfactualFirstMs = performance.now() - counterfactualOpenedAt;
  const counterfactualRuns: number[] = [];
  let steps = 0;
  let counterfactualGraphRuns = 0;
  for (let repeat = 0; repeat < Math.max(2, Math.ceil(repeats / 2)); repeat++) {
    const before = counter.runs;
    const startedAt = performance.now();
    steps = (await pixelCounterfactual()).steps;
    counterfactualRuns.push(performance.now() - startedAt);
    counterfactualGraphRuns = counter.runs - before;
    process.stderr.write(`counterfactual: ${counterfactualRuns.at(-1)!.toFixed(0)} ms\n`);
  }
  const counterfactualMs = median(counterfactualRuns);
  rows.push({
    method: 'counterfactual-pixel',
    target: 'prototype',
    medianMs: counterfactualMs,
    bestMs: Math.min(...counterfactualRuns),
    firstMs: counterfactualFirstMs,
    graphRuns: counterfactualGraphRuns,
    graphImages: counterfactualGraphRuns,
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
    occlusionGraphRuns: occlusion.graphRuns,
    occlusionBatched: occlusion.graphRuns < (2 * patches) / 8,
  };
  closeExplainSessions();
  disposeModel(model);

  if (json) {
    process.stdout.write(`${JSON.stringify({ device: device.device, imageSizePx, spec: { width: spec.width, blocksPerStage: spec.blocksPerStage, prototypes: spec.prototypes }, rows, checks })}\n`);
    return;
  }
  const lines = [
    `Explanations on onnxruntime, ${describeDevice(device)}; ${imageSizePx} px RGB image, default backbone (width ${spec.width}, stages [${spec.blocksPerStage}], ${spec.prototypes} prototypes)`,
    `${'method'.padEnd(28)}${'target'.padEnd(12)}${'median ms'.padStart(10)}${'best ms'.padStart(10)}${'first ms'.padStart(10)}${'runs'.padStart(7)}${'images'.padStart(8)}  note`,
    ...rows.map(
      (row) =>
        `${row.method.padEnd(28)}${row.target.padEnd(12)}${row.medianMs.toFixed(1).padStart(10)}${row.bestMs.toFixed(1).padStart(10)}${row.firstMs.toFixed(0).padStart(10)}${String(row.graphRuns).padStart(7)}${String(row.graphImages).padStart(8)}  ${row.note ?? ''}`,
    ),
    '',
    `Grad-CAM ${gradCamMs.toFixed(1)} ms (budget ${gradCamBudgetMs} ms): ${checks.gradCamWithinBudget ? 'ok' : 'OVER'}`,
    `${options.counterfactualSteps}-step counterfactual ${(counterfactualMs / 1000).toFixed(2)} s (budget ${counterfactualBudgetMs / 1000} s): ${checks.counterfactualWithinBudget ? 'ok' : 'OVER'}`,
    `Occlusion: ${checks.occlusionImages} occluded images in ${checks.occlusionGraphRuns} graph runs: ${checks.occlusionBatched ? 'batched' : 'NOT BATCHED'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
});
