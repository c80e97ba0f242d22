// Grad-CAM and the counterfactual as ONNX gradient graphs on onnxruntime must explain as the tfjs versions do:
// on the cpu provider against tfjs, and on the GPU (lavapipe in CI) against the cpu provider.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { classActivationMaps } from '../../../src/engine/explain/cam';
import { conditionalOcclusion } from '../../../src/engine/explain/conditionalOcclusion';
import { counterfactual, counterfactualExplainer } from '../../../src/engine/explain/counterfactual';
import { readMaps } from '../../../src/engine/explain/explainer';
import { gradCam } from '../../../src/engine/explain/gradCam';
import { scoreMasked, scoreMaskedOnDevice } from '../../../src/engine/explain/occlusion';
import { swavExplainable } from '../../../src/engine/explain/network';
import { counterfactualOnDevice } from '../../../src/engine/explain/ortCounterfactual';
import { gradCamOnDevice } from '../../../src/engine/explain/ortGradCam';
import { resolveExplainOptions } from '../../../src/engine/explain/options';
import { scorerFor, tfjsScorer } from '../../../src/engine/explain/scorer';
import { featuresOf } from '../../../src/engine/explain/target';
import { patchMasks } from '../../../src/engine/explain/views';
import { createModel, disposeModel, featureDim, type ModelSpec, type SwavModel } from '../../../src/engine/model/model';
import { initBackend } from '../../../src/engine/runtime/tfjs/backend';
import { createRandom } from '../../../src/engine/util/random';
import { skipWithoutGpu } from '../../gpu';
import { tinySpec } from '../model/tinySpec';
import { maxDifference, randomPixels } from '../onnx/helpers';

process.env.CLUSTER_LENS_THREADS ??= '1';

// Grey at 16 px (8 × 8 feature map: Conv kernels), and colour at 24 px with a stride-2 stem (a 3 × 3 map:
// the batched-patch convolutions).
const cases: { spec: ModelSpec; sizePx: number }[] = [
  { spec: tinySpec, sizePx: 16 },
  { spec: { ...tinySpec, channels: 3, stemStride: 2, blocksPerStage: [1, 1, 1], inputMean: [0.5, 0.4, 0.3], inputStd: [0.2, 0.25, 0.3] }, sizePx: 24 },
];
const models: SwavModel[] = [];

before(async () => {
  await initBackend('wasm');
  cases.forEach(({ spec }, i) => {
    const model = createModel(spec, createRandom(3 + i));
    const random = createRandom(10 + i);
    // BatchNorm statistics away from 0 / 1, so that folding them matters.
    for (const [name, variable] of model.variables) {
      if (/\.(runningMean|runningVariance|gamma|beta)$/.test(name)) {
        const positive = /Variance|gamma/.test(name);
        tf.tidy(() => variable.assign(tf.tensor(Float32Array.from({ length: variable.size }, () => (positive ? random.uniform(0.5, 2) : random.uniform(-0.5, 0.5))), variable.shape)));
      }
    }
    models.push(model);
  });
});

after(() => models.forEach(disposeModel));

const temperature = 0.1;
const imageOf = ({ spec, sizePx }: (typeof cases)[number], seed: number) => randomPixels(1, sizePx, spec.channels, seed);
// 20 steps that never stop early: the margin cannot be reached.
const options = resolveExplainOptions({ counterfactualSteps: 20, counterfactualMargin: 1 });

test('Grad-CAM on the cpu provider gives tfjs’s heatmap and score', async () => {
  for (const [i, testCase] of cases.entries()) {
    const model = models[i];
    const baseline = tf.memory().numTensors;
    const net = swavExplainable(model, temperature);
    const pixels = imageOf(testCase, 20 + i);
    const image = tf.tensor4d(pixels, [1, testCase.sizePx, testCase.sizePx, testCase.spec.channels]);
    for (const prototype of [0, 3]) {
      const { maps, score } = classActivationMaps(net, { kind: 'prototype', prototype }, image, (_a, g) => tf.mean(g, [1, 2], true));
      const expectedScore = score.dataSync()[0];
      score.dispose();
      const [expected] = readMaps(maps);
      const ours = await gradCamOnDevice(model, pixels, testCase.sizePx, prototype, 'cpu');
      assert.equal(ours.device, 'cpu');
      assert.ok(expected.some((value) => value > 0.5), 'the reference heatmap is not flat');
      const gap = maxDifference(ours.heatmap, expected);
      if (process.env.SHOW_GAPS) console.log(`gradcam case ${i} p${prototype}: heatmap gap ${gap}, score gap ${Math.abs(ours.score - expectedScore)}`);
      assert.ok(gap < 1e-4, `case ${i}, prototype ${prototype}: heatmaps differ by ${gap}`);
      assert.ok(Math.abs(ours.score - expectedScore) < 1e-5, `score ${ours.score} vs ${expectedScore}`);
    }
    tf.dispose(image);
    net.dispose();
    assert.equal(tf.memory().numTensors, baseline);
  }
  assert.equal(gradCam.method, 'gradcam');
});

test('a 20-step counterfactual on the cpu provider takes tfjs’s steps', async () => {
  for (const [i, testCase] of cases.entries()) {
    const model = models[i];
    const net = swavExplainable(model, temperature);
    const pixels = imageOf(testCase, 30 + i);
    const image = tf.tensor4d(pixels, [1, testCase.sizePx, testCase.sizePx, testCase.spec.channels]);
    const target = 2;
    const expected = await counterfactual(net, image, target, options);
    const ours = await counterfactualOnDevice(model, pixels, testCase.sizePx, temperature, target, options, undefined, 'cpu');
    assert.equal(ours.steps, 20);
    assert.equal(ours.converged, false);
    assert.ok(expected.maxAbsoluteChange > 0.2, `the edit moves pixels (${expected.maxAbsoluteChange})`);
    const gap = maxDifference(ours.pixels, expected.pixels);
    const meanGap = ours.pixels.reduce((sum, value, p) => sum + Math.abs(value - expected.pixels[p]), 0) / ours.pixels.length;
    if (process.env.SHOW_GAPS) console.log(`counterfactual case ${i}: pixel gap ${gap} max, ${meanGap} mean; change ${expected.maxAbsoluteChange}; probabilities gap ${maxDifference(ours.probabilities, expected.probabilities)}`);
    assert.ok(gap < 1e-3 && meanGap < 1e-5, `case ${i}: edited pixels differ by ${gap} at most, ${meanGap} on average`);
    assert.ok(maxDifference(ours.probabilities, expected.probabilities) < 1e-4, 'probabilities after the edit');
    assert.ok(maxDifference(ours.originalProbabilities, expected.originalProbabilities) < 1e-5, 'probabilities before');
    assert.ok(Math.abs(ours.l2Distance - expected.l2Distance) < 1e-2 * expected.l2Distance, `l2 ${ours.l2Distance} vs ${expected.l2Distance}`);
    tf.dispose(image);
    net.dispose();
  }
});

test('the explainers run the graphs for the engine’s network, and fall back to tfjs with a log line', async () => {
  const testCase = cases[1];
  const net = swavExplainable(models[1], temperature);
  const image = tf.tensor4d(imageOf(testCase, 50), [1, testCase.sizePx, testCase.sizePx, testCase.spec.channels]);
  const pair = tf.tensor4d(imageOf(testCase, 51), [1, testCase.sizePx, testCase.sizePx, testCase.spec.channels]);
  const lines: string[] = [];
  const input = { image, options, seed: 0, log: (_level: string, message: string) => lines.push(message) };
  const target = { kind: 'prototype' as const, prototype: 4 };
  try {
    const onDevice = await gradCam.explain({ ...input, net, target });
    assert.equal(onDevice.device, 'cpu');
    // A model whose weights cannot be read: the graph cannot be built, tfjs explains instead.
    const broken = { ...net, model: { ...models[1], variables: new Map() } };
    const fallen = await gradCam.explain({ ...input, net: broken, target });
    assert.equal(fallen.device, undefined);
    assert.ok(maxDifference(onDevice.heatmap, fallen.heatmap) < 1e-4, 'the same map either way');
    assert.match(lines.join('\n'), /^Grad-CAM on cpu failed \(.*no weight.*\); running it on tfjs instead\.$/);
    assert.equal((await gradCam.explain({ ...input, net, target: { kind: 'similarity', pair } })).device, undefined, 'similarity targets stay on tfjs');
    const edit = await counterfactualExplainer.explain({ ...input, net, target });
    assert.equal(edit.device, 'cpu');
    assert.equal(edit.counterfactual!.steps, 20);
  } finally {
    tf.dispose([image, pair]);
    net.dispose();
  }
});

// 32 masks a run: several runs, the last one padded.
const occlusionOptions = { ...options, batchSize: 32 };

test('conditional occlusion on the cpu provider scores the masked copies and maps them as tfjs does', async () => {
  for (const [i, testCase] of cases.entries()) {
    const baseline = tf.memory().numTensors;
    const net = swavExplainable(models[i], temperature);
    const onTfjs = { ...net, model: undefined };
    const [width, channels] = [testCase.sizePx, testCase.spec.channels];
    const pixels = imageOf(testCase, 60 + i);
    const image = tf.tensor4d(pixels, [1, width, width, channels]);
    const pair = tf.tensor4d(imageOf(testCase, 70 + i), [1, width, width, channels]);
    const pairFeatures = featuresOf(onTfjs, pair);
    const { masks, count } = patchMasks(width, 5, 2);
    for (const [reference, onDevice] of [
      [{ kind: 'prototype', prototype: 2 }, { kind: 'prototype', prototype: 2 }],
      [{ kind: 'features', features: pairFeatures }, { kind: 'features', features: pairFeatures.dataSync() as Float32Array }],
    ] as const) {
      const expected = scoreMasked(onTfjs, image, masks, count, reference, 32);
      const ours = await scoreMaskedOnDevice(models[i], pixels, width, masks, count, onDevice, 32, 'cpu');
      assert.equal(ours.device, 'cpu');
      const gap = maxDifference(ours.values, expected);
      if (process.env.SHOW_GAPS) console.log(`occlusion case ${i} ${reference.kind}: score gap ${gap}`);
      assert.ok(gap < 1e-5, `case ${i}, ${reference.kind}: scores differ by ${gap}`);
    }
    for (const target of [{ kind: 'prototype' as const, prototype: 1 }, { kind: 'similarity' as const, pair }]) {
      const input = { image, target, options: occlusionOptions, seed: 0 };
      const [ours, expected] = [await conditionalOcclusion.explain({ ...input, net }), await conditionalOcclusion.explain({ ...input, net: onTfjs })];
      assert.equal(ours.device, 'cpu');
      assert.equal(expected.device, undefined);
      assert.ok(expected.heatmap.some((value) => value > 0.5), 'the reference map is not flat');
      const gaps = [maxDifference(ours.heatmap, expected.heatmap), target.kind === 'similarity' ? maxDifference(ours.pairHeatmap!, expected.pairHeatmap!) : 0];
      // A cosine drops by ~1e-3 under a patch; normalising the map to [0, 1] magnifies 1e-7 of float noise that much.
      const tolerance = target.kind === 'similarity' ? 1e-3 : 1e-4;
      if (process.env.SHOW_GAPS) console.log(`occlusion case ${i} ${target.kind}: map gaps ${gaps}`);
      assert.ok(Math.max(...gaps) < tolerance, `case ${i}, ${target.kind}: maps differ by ${gaps}`);
    }
    tf.dispose([image, pair, pairFeatures]);
    net.dispose();
    assert.equal(tf.memory().numTensors, baseline);
  }
});

test('occlusion’s masked copies score the same on the GPU as on the cpu provider', { skip: skipWithoutGpu, timeout: 600_000 }, async () => {
  for (const [i, testCase] of cases.entries()) {
    const pixels = imageOf(testCase, 80 + i);
    const { masks, count } = patchMasks(testCase.sizePx, 5, 2);
    for (const reference of [{ kind: 'prototype' as const, prototype: 3 }, { kind: 'features' as const, features: Float32Array.from({ length: featureDim(testCase.spec) }, (_, f) => Math.sin(f)) }]) {
      const cpu = await scoreMaskedOnDevice(models[i], pixels, testCase.sizePx, masks, count, reference, 32, 'cpu');
      const gpu = await scoreMaskedOnDevice(models[i], pixels, testCase.sizePx, masks, count, reference, 32, 'webgpu');
      assert.equal(gpu.device, 'webgpu');
      const gap = maxDifference(cpu.values, gpu.values);
      assert.ok(gap < 1e-3, `case ${i}, ${reference.kind}: scores differ by ${gap}`);
    }
  }
});

test('Grad-CAM and a 20-step counterfactual on the GPU match the cpu provider', { skip: skipWithoutGpu, timeout: 600_000 }, async () => {
  for (const [i, testCase] of cases.entries()) {
    const model = models[i];
    const pixels = imageOf(testCase, 40 + i);
    const [cpu, gpu] = [await gradCamOnDevice(model, pixels, testCase.sizePx, 1, 'cpu'), await gradCamOnDevice(model, pixels, testCase.sizePx, 1, 'webgpu')];
    assert.equal(gpu.device, 'webgpu');
    assert.ok(maxDifference(cpu.heatmap, gpu.heatmap) < 1e-3, `case ${i}: heatmaps differ by ${maxDifference(cpu.heatmap, gpu.heatmap)}`);
    const [cpuEdit, gpuEdit] = [
      await counterfactualOnDevice(model, pixels, testCase.sizePx, temperature, 2, options, undefined, 'cpu'),
      await counterfactualOnDevice(model, pixels, testCase.sizePx, temperature, 2, options, undefined, 'webgpu'),
    ];
    assert.equal(gpuEdit.device, 'webgpu');
    const gap = maxDifference(cpuEdit.pixels, gpuEdit.pixels);
    const meanGap = cpuEdit.pixels.reduce((sum, value, p) => sum + Math.abs(value - gpuEdit.pixels[p]), 0) / cpuEdit.pixels.length;
    if (process.env.SHOW_GAPS) console.log(`gpu case ${i}: heatmap gap ${maxDifference(cpu.heatmap, gpu.heatmap)}; pixel gap ${gap} max, ${meanGap} mean`);
    // The GPU sums in another order; Adam's normalised steps can turn a rounding gap into a larger one.
    assert.ok(gap < 1e-2 && meanGap < 1e-4, `case ${i}: edited pixels differ by ${gap} at most, ${meanGap} on average`);
    assert.ok(maxDifference(cpuEdit.probabilities, gpuEdit.probabilities) < 1e-3, 'probabilities after the edit');
  }
});

test('the region and mask counterfactuals’ scorer on the cpu provider gives tfjs’s scores and probabilities, batch after batch', async () => {
  for (const [i, testCase] of cases.entries()) {
    const net = swavExplainable(models[i], temperature);
    try {
      // 150 images: more than one batch of the forward graph (128), the last one padded.
      const count = 150;
      const images = randomPixels(count, testCase.sizePx, testCase.spec.channels, 40 + i);
      const onDevice = await scorerFor(net, testCase.sizePx, testCase.spec.channels, 64);
      assert.equal(onDevice.device, 'cpu');
      const expected = await tfjsScorer(net, testCase.sizePx, testCase.spec.channels, 64).score(images, count);
      const ours = await onDevice.score(images, count);
      assert.equal(ours.scores.length, count * testCase.spec.prototypes);
      assert.ok(maxDifference(ours.scores, expected.scores) < 1e-4, `case ${i}: scores differ by ${maxDifference(ours.scores, expected.scores)}`);
      assert.ok(maxDifference(ours.probabilities, expected.probabilities) < 1e-4, `case ${i}: probabilities differ by ${maxDifference(ours.probabilities, expected.probabilities)}`);
      for (let row = 0; row < count; row++) {
        const sum = ours.probabilities.subarray(row * testCase.spec.prototypes, (row + 1) * testCase.spec.prototypes).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sum - 1) < 1e-5);
      }
    } finally {
      net.dispose();
    }
  }
});
