// Every explanation method runs as onnxruntime graphs. On the cpu provider each must give what its TensorFlow.js
// version gave (test/fixtures/explain/tfjs-explanations.json, captured before the switch by
// scripts/fixtures/captureExplainFixture.ts as of commit 77d6ab1); on the GPU
// (lavapipe in CI) the same as on the cpu provider.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { counterfactual } from '../../../src/engine/explain/counterfactual';
import type { ExplainableModel, Explanation, Target } from '../../../src/engine/explain/explainer';
import { explainers } from '../../../src/engine/explain/methods';
import { closeExplainSessions, ownGraphs, scoreImagesOnDevice } from '../../../src/engine/explain/onDevice';
import { resolveExplainOptions } from '../../../src/engine/explain/options';
import { scorerFor, softmaxRows } from '../../../src/engine/explain/scorer';
import type { ModelSpec } from '../../../src/engine/model/model';
import type { WeightMap } from '../../../src/engine/onnx/export';
import { currentDevice, useDevice } from '../../../src/engine/runtime/device';
import type { ExplainMethod } from '../../../src/protocol/options';
import { skipWithoutGpu } from '../../gpu';
import { maxDifference, randomPixels } from '../onnx/helpers';

process.env.CLUSTER_LENS_THREADS ??= '1';

interface Fixture {
  spec: ModelSpec;
  sizePx: number;
  temperature: number;
  seed: number;
  options: Record<string, number>;
  weights: Record<string, { shape: number[]; values: number[] }>;
  image: number[];
  pair: number[];
  results: Record<string, { heatmap: number[]; pairHeatmap?: number[]; score: number }>;
  counterfactual: { target: number; pixels: number[]; probabilities: number[]; originalProbabilities: number[]; steps: number };
}

const fixture = JSON.parse(readFileSync(path.join(__dirname, '../../fixtures/explain/tfjs-explanations.json'), 'utf8')) as Fixture;
const weights: WeightMap = new Map(Object.entries(fixture.weights).map(([name, { shape, values }]) => [name, { shape, values: Float32Array.from(values) }]));
const net: ExplainableModel = { graphs: ownGraphs(fixture.spec, () => weights, {}), prototypes: fixture.spec.prototypes, temperature: fixture.temperature };
const options = resolveExplainOptions(fixture.options);
const image = { pixels: Float32Array.from(fixture.image), sizePx: fixture.sizePx, channels: fixture.spec.channels };
const targets: Record<Target['kind'], Target> = { prototype: { kind: 'prototype', prototype: 3 }, similarity: { kind: 'similarity', pair: Float32Array.from(fixture.pair) } };

after(closeExplainSessions);

/**
 * How far a map may be from tfjs's (measured with SHOW_GAPS=1: at most 1.5e-6 for the gradient methods, 1.1e-5
 * for the occlusion methods and pixel invariance). Normalising a map to [0, 1] magnifies float noise by
 * 1 / (its range), and a cosine moves by only ~1e-3 under a patch. Seeded perturbations draw the same numbers in
 * the same order as before.
 */
function tolerance(method: string): number {
  return method.includes('occlusion') || method === 'pixel-invariance' ? 1e-4 : 1e-5;
}

async function explainAll(): Promise<Map<string, Explanation>> {
  const explanations = new Map<string, Explanation>();
  for (const key of Object.keys(fixture.results)) {
    const [method, kind] = key.split('/') as [ExplainMethod, Target['kind']];
    explanations.set(key, await explainers[method].explain({ net, image, target: targets[kind], options, seed: fixture.seed }));
  }
  return explanations;
}

test('every method on the cpu provider gives the maps and scores its tfjs version gave', async () => {
  await useDevice('cpu');
  const explanations = await explainAll();
  // Every method that takes an image and a target is in the fixture (attention rollout needs a transformer; the
  // counterfactuals are checked below and in their own tests).
  const covered = new Set([...explanations.keys()].map((key) => key.split('/')[0]));
  for (const method of Object.keys(explainers)) if (!method.startsWith('counterfactual') && method !== 'attention-rollout' && method !== 'context-agnostic-occlusion') assert.ok(covered.has(method), `${method} is checked`);
  for (const [key, ours] of explanations) {
    const expected = fixture.results[key];
    const method = key.split('/')[0];
    const gaps = [maxDifference(ours.heatmap, Float32Array.from(expected.heatmap)), expected.pairHeatmap ? maxDifference(ours.pairHeatmap!, Float32Array.from(expected.pairHeatmap)) : 0];
    if (process.env.SHOW_GAPS) console.log(`${key}: map gaps ${gaps.map((gap) => gap.toExponential(1))}, score gap ${Math.abs(ours.score - expected.score).toExponential(1)}`);
    assert.ok(Math.max(...expected.heatmap) > 0.5, `${key}: the reference map is not flat`);
    assert.equal(ours.pairHeatmap !== undefined, expected.pairHeatmap !== undefined, `${key}: a pair map exactly for similarity targets`);
    assert.ok(Math.max(...gaps) < tolerance(method), `${key}: maps differ by ${gaps}`);
    assert.ok(Math.abs(ours.score - expected.score) < 1e-5, `${key}: score ${ours.score} vs ${expected.score}`);
    if (method !== 'random') assert.equal(ours.device, 'cpu');
  }
});

test('the pixel counterfactual takes the 20 steps tfjs took', async () => {
  await useDevice('cpu');
  const expected = fixture.counterfactual;
  const ours = await counterfactual(net.graphs, image.pixels, image.sizePx, net.temperature, expected.target, options);
  assert.equal(ours.steps, expected.steps);
  assert.equal(ours.converged, false);
  const pixels = Float32Array.from(expected.pixels);
  const gap = maxDifference(ours.pixels, pixels);
  const meanGap = ours.pixels.reduce((sum, value, p) => sum + Math.abs(value - pixels[p]), 0) / ours.pixels.length;
  assert.ok(maxDifference(image.pixels, pixels) > 0.2, 'the edit moves pixels');
  assert.ok(gap < 1e-3 && meanGap < 1e-5, `edited pixels differ by ${gap} at most, ${meanGap} on average`);
  assert.ok(maxDifference(ours.probabilities, Float32Array.from(expected.probabilities)) < 1e-4, 'probabilities after the edit');
  assert.ok(maxDifference(ours.originalProbabilities, Float32Array.from(expected.originalProbabilities)) < 1e-5, 'probabilities before');
});

test('the scorer pads its last batch without changing a score', async () => {
  await useDevice('cpu');
  // 150 images: more than one batch of the forward graph (128), the last one padded.
  const count = 150;
  const images = randomPixels(count, image.sizePx, image.channels, 40);
  const scorer = await scorerFor(net, image.sizePx, image.channels);
  const ours = await scorer.score(images, count);
  const unpadded = await scoreImagesOnDevice(net, images, count, image.sizePx, count);
  assert.equal(ours.scores.length, count * net.prototypes);
  assert.ok(maxDifference(ours.scores, unpadded.scores) < 1e-5, `scores differ by ${maxDifference(ours.scores, unpadded.scores)}`);
  assert.ok(maxDifference(ours.probabilities, softmaxRows(unpadded.scores, net.prototypes, net.temperature)) < 1e-6);
  for (let row = 0; row < count; row++) {
    const sum = ours.probabilities.subarray(row * net.prototypes, (row + 1) * net.prototypes).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5);
  }
});

test('every method and the pixel counterfactual on the GPU match the cpu provider', { skip: skipWithoutGpu, timeout: 600_000 }, async () => {
  await useDevice('cpu');
  const onCpu = await explainAll();
  const cpuEdit = await counterfactual(net.graphs, image.pixels, image.sizePx, net.temperature, 2, options);
  try {
    await useDevice('gpu');
    assert.equal(currentDevice().device, 'webgpu');
    const onGpu = await explainAll();
    for (const [key, gpu] of onGpu) {
      const cpu = onCpu.get(key)!;
      const method = key.split('/')[0];
      if (method !== 'random') assert.equal(gpu.device, 'webgpu', key);
      const gaps = [maxDifference(cpu.heatmap, gpu.heatmap), cpu.pairHeatmap ? maxDifference(cpu.pairHeatmap, gpu.pairHeatmap!) : 0];
      if (process.env.SHOW_GAPS) console.log(`gpu ${key}: map gaps ${gaps.map((gap) => gap.toExponential(1))}`);
      // The GPU sums in another order: the same magnification as against tfjs, a little more.
      assert.ok(Math.max(...gaps) < 5 * tolerance(method), `${key}: maps differ by ${gaps}`);
      assert.ok(Math.abs(cpu.score - gpu.score) < 1e-4, `${key}: score ${gpu.score} vs ${cpu.score}`);
    }
    const gpuEdit = await counterfactual(net.graphs, image.pixels, image.sizePx, net.temperature, 2, options);
    assert.equal(gpuEdit.device, 'webgpu');
    const gap = maxDifference(cpuEdit.pixels, gpuEdit.pixels);
    const meanGap = cpuEdit.pixels.reduce((sum, value, p) => sum + Math.abs(value - gpuEdit.pixels[p]), 0) / cpuEdit.pixels.length;
    // Adam's normalised steps can turn a rounding gap into a larger one.
    assert.ok(gap < 1e-2 && meanGap < 1e-4, `edited pixels differ by ${gap} at most, ${meanGap} on average`);
    assert.ok(maxDifference(cpuEdit.probabilities, gpuEdit.probabilities) < 1e-3, 'probabilities after the edit');
  } finally {
    closeExplainSessions();
    await useDevice('cpu');
  }
});
