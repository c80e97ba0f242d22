// Imported backbones in the explanation graphs: torchvision's ResNet-18 and MobileNet-V3, its ViT and a timm-style
// DINO ViT, exported the default way (scripts/onnx/make-fixtures.py), through the same differentiator as the
// engine's own network. The graphs' forward must give onnxruntime's features (of the ONNX file itself), and their
// gradients must match finite differences.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { createHeadModel } from '../../../src/engine/frozen/headTrainer';
import { explainLayer, importedGraphs } from '../../../src/engine/frozen/explainable';
import { OrtBackbone } from '../../../src/engine/frozen/ortBackbone';
import { embedFeatures } from '../../../src/engine/frozen/headTrainer';
import { closeExplainSessions, targetGradients } from '../../../src/engine/explain/onDevice';
import { disposeModel, weightsOf } from '../../../src/engine/model/model';
import { resolveBackboneInput } from '../../../src/engine/onnx/backboneInput';
import { parseOnnx } from '../../../src/engine/onnx/graph';
import { OnnxModelError } from '../../../src/engine/onnx/onnxError';
import { DifferentiableGraph } from '../../../src/engine/runtime/autodiff';
import { explainGraphNames as names, importedNetwork } from '../../../src/engine/runtime/explainGraph';
import { emitBackbone, importedBackbone, probeBackbone } from '../../../src/engine/runtime/importedGraph';
import { decodeModel, encodeModel } from '../../../src/engine/onnx/schema';
import { OrtModel } from '../../../src/engine/runtime/session';
import { createRandom } from '../../../src/engine/util/random';
import { assertClose, fixtures, maxDifference, randomPixels, referenceHead } from '../onnx/helpers';
import { skipWithoutGpu } from '../../gpu';
import { counterfactual } from '../../../src/engine/explain/counterfactual';
import { resolveExplainOptions } from '../../../src/engine/explain/options';

const imagenet = { inputMean: [0.485, 0.456, 0.406], inputStd: [0.229, 0.224, 0.225] };

export const importFixtures = [
  { file: 'tv_resnet18_narrow.onnx', sizePx: 64, layer: 'map' },
  { file: 'tv_resnet18_narrow_opset13_inputs.onnx', sizePx: 64, layer: 'map' },
  { file: 'tv_mobilenet_v3_small.onnx', sizePx: 48, layer: 'map' },
  { file: 'tv_vit_tiny.onnx', sizePx: 32, layer: 'tokens' },
  { file: 'dino_vit_tiny.onnx', sizePx: 32, layer: 'tokens' },
  // LayerNorm decomposed (ReduceMean, Pow, Sqrt), and the same at opset 18 (the reductions' axes as an input)
  { file: 'tv_vit_tiny_opset13.onnx', sizePx: 32, layer: 'tokens' },
  { file: 'dino_vit_tiny_opset18.onnx', sizePx: 32, layer: 'tokens' },
  { file: 'resnet_tiny.onnx', sizePx: 16, layer: 'map' },
] as const;

async function setUp(file: string) {
  const bytes = readFileSync(path.join(fixtures, file));
  const graph = parseOnnx(bytes, file);
  const input = resolveBackboneInput(graph, imagenet);
  const backbone = await OrtBackbone.fromBytes(bytes, graph, { ...imagenet, device: 'cpu' });
  return { bytes, graph, input, backbone };
}

for (const fixture of importFixtures) {
  test(`imported graph ${fixture.file}: the gradient graphs' forward gives onnxruntime's features and the head's scores`, async () => {
    const { bytes, graph, input, backbone } = await setUp(fixture.file);
    const count = 3;
    const pixels = randomPixels(count, fixture.sizePx, 3, 7);
    const expected = await backbone.features(pixels, count, fixture.sizePx, fixture.sizePx, 3);
    const featureDim = expected.length / count;
    const head = createHeadModel(featureDim, { projectionHiddenDim: 16, projectionDim: 8, prototypes: 5 }, createRandom(3));
    const graphs = importedGraphs(bytes, graph, input, head, () => weightsOf(head));
    const forward = await OrtModel.open(await graphs.forward({ batch: count, imageSizePx: fixture.sizePx }), 'forward', { device: 'cpu' });
    const outputs = await forward.run({ [names.images]: { data: pixels, dims: [count, fixture.sizePx, fixture.sizePx, 3] } }, [names.features, names.scores]);
    assertClose(outputs[names.features].data, expected, 1e-4, `${fixture.file} features`);
    const { scores } = await embedFeatures(head, expected, count);
    assertClose(outputs[names.scores].data, scores, 1e-4, `${fixture.file} scores`);
    // And the head written out in plain JS on onnxruntime's features.
    assertClose(outputs[names.scores].data, referenceHead({ projectionHiddenDim: 16, projectionDim: 8, prototypes: 5 }, head.variables, expected, count).scores, 1e-4, `${fixture.file} scores (plain-JS head)`);

    // The target-gradient graph at batch 1 for a prototype at the layer (the CAMs): the same scores, the target's
    // value among them, and the layer as a map with a gradient.
    const single = pixels.subarray(0, fixture.sizePx * fixture.sizePx * 3);
    const atLayer = await OrtModel.open(await graphs.targetGradient({ batch: 1, imageSizePx: fixture.sizePx, target: 'prototype', wrt: 'layer' }), 'target gradient', { device: 'cpu' });
    const target = Float32Array.from({ length: 5 }, (_, i) => (i === 2 ? 1 : 0));
    const cam = await atLayer.run({ [names.images]: { data: single, dims: [1, fixture.sizePx, fixture.sizePx, 3] }, [names.target]: { data: target, dims: [1, 5] } }, [names.value, names.scores, names.featureMap, names.featureGradient]);
    assertClose(cam[names.scores].data, scores.subarray(0, 5), 1e-4, `${fixture.file} target-gradient scores`);
    assert.ok(Math.abs(cam[names.value].data[0] - scores[2]) < 1e-4, `${fixture.file}: the value is prototype 2's score`);
    const [mapCount, channels, height, width] = cam[names.featureMap].dims;
    assert.ok(mapCount === 1 && channels > 1 && height > 1 && width > 1, `${fixture.file}: a layer map [${cam[names.featureMap].dims.join(', ')}]`);
    assert.deepEqual(cam[names.featureGradient].dims, cam[names.featureMap].dims);
    assert.ok(cam[names.featureGradient].data.some((value) => value !== 0), 'the layer gets a gradient');
    // A CNN's layer is its last feature map, which everything downstream flows through: moving the image by ±ε·d
    // changes the value by Σ ∂y/∂A · ΔA, whatever lies between the pixels and the map (so kinks before it do not
    // matter). (A ViT's tokens entering the last attention are not such a cut: the residual stream bypasses them.)
    if (fixture.layer === 'map') {
      const direction = createRandom(10);
      const step = Float32Array.from(single, () => 1e-2 * direction.normal());
      const layerAt = (sign: number) =>
        atLayer.run({ [names.images]: { data: single.map((value, i) => value + sign * step[i]), dims: [1, fixture.sizePx, fixture.sizePx, 3] }, [names.target]: { data: target, dims: [1, 5] } }, [names.value, names.featureMap]);
      const [plus, minus] = [await layerAt(1), await layerAt(-1)];
      const change = plus[names.value].data[0] - minus[names.value].data[0];
      const layerGradient = cam[names.featureGradient].data;
      const chained = layerGradient.reduce((sum, value, i) => sum + value * (plus[names.featureMap].data[i] - minus[names.featureMap].data[i]), 0);
      // Within 5 %, plus float32 rounding of the two values (~1e-7).
      assert.ok(Math.abs(change - chained) <= 0.05 * Math.abs(chained) + 1e-7, `${fixture.file}: the value moved by ${change}, the layer's gradient predicts ${chained}`);
    }
    assert.equal(explainLayer(graph, await probeBackbone(bytes, graph, input.name, [1, 3, fixture.sizePx, fixture.sizePx]), input.featureOutput).kind, fixture.layer);

    // For a similarity at the pixels (input × gradient, SmoothGrad): each row's value is the cosine of onnxruntime's
    // features with that row's reference (random: two random images' features are too alike, cos ≈ 1, for a
    // gradient to stand above rounding), and the gradient along itself matches central differences of that cosine.
    const pairDims = [2, fixture.sizePx, fixture.sizePx, 3];
    const pair = pixels.subarray(0, 2 * single.length);
    const random = createRandom(9);
    const reference = Float32Array.from({ length: 2 * featureDim }, () => random.normal());
    const atPixels = await OrtModel.open(await graphs.targetGradient({ batch: 2, imageSizePx: fixture.sizePx, target: 'similarity', wrt: 'image' }), 'similarity gradient', { device: 'cpu' });
    const similarity = await atPixels.run({ [names.images]: { data: pair, dims: pairDims }, [names.reference]: { data: reference, dims: [2, featureDim] } }, [names.value, names.imageGradient]);
    const cosineOf = async (images: Float32Array) => {
      const f = await backbone.features(images, 1, fixture.sizePx, fixture.sizePx, 3);
      return cosine64(f, reference.subarray(0, featureDim));
    };
    const expectedCosines = [0, 1].map((row) => cosine64(expected.subarray(row * featureDim, (row + 1) * featureDim), reference.subarray(row * featureDim, (row + 1) * featureDim)));
    assertClose(similarity[names.value].data, expectedCosines, 1e-4, `${fixture.file} cosines`);
    const gradient = similarity[names.imageGradient].data.subarray(0, single.length);
    const largest = Math.max(...Array.from(gradient, Math.abs));
    assert.ok(largest > 0, 'a non-zero gradient at the pixels');
    const along = gradient.map((value) => value / largest);
    const small = 1e-3;
    const directional = ((await cosineOf(single.map((value, i) => value + small * along[i]))) - (await cosineOf(single.map((value, i) => value - small * along[i])))) / (2 * small);
    const predicted = gradient.reduce((sum, value, i) => sum + value * along[i], 0);
    // Within 5 %, plus float32 rounding of the features' cosine (~1e-8) over the step.
    assert.ok(Math.abs(directional - predicted) <= 0.05 * Math.abs(predicted) + 2e-8 / small, `${fixture.file} similarity along its gradient: finite difference ${directional}, gradient ${predicted}`);
    await Promise.all([forward.dispose(), atLayer.dispose(), atPixels.dispose(), backbone.dispose()]);
    disposeModel(head);
  });

  test(`imported graph ${fixture.file}: the gradient at the pixels matches finite differences`, async () => {
    const { bytes, graph, input, backbone } = await setUp(fixture.file);
    const size = fixture.sizePx;
    const dims = [1, size, size, 3];
    const featureDim = (await backbone.features(randomPixels(1, size, 3), 1, size, size, 3)).length;
    const head = createHeadModel(featureDim, { projectionHiddenDim: 16, projectionDim: 8, prototypes: 5 }, createRandom(4));
    const probe = await probeBackbone(bytes, graph, input.name, [1, 3, size, size]);
    const network = importedNetwork(importedBackbone(bytes, graph, input.name, input.featureOutput, probe, [1, 3, size, size]), weightsOf(head), input, 5, explainLayer(graph, probe, input.featureOutput), probe.get(input.featureOutput)!.dims.slice(1));
    // y = Σ features · r for a fixed random r (the backbone's own gradient: the head's rules are the engine's, tested
    // with its network; a prototype score of a random head moves too little for float32 differences).
    const builder = new DifferentiableGraph();
    const images = builder.input(names.images, dims, true);
    const { features } = network.emit(builder, images, false);
    const random = createRandom(5);
    const direction = Float32Array.from({ length: featureDim }, () => random.normal());
    builder.backward([[features, builder.floats(direction, [1, featureDim])]]);
    builder.output(features, names.features);
    builder.output(builder.gradient(images), 'image_gradient');
    const model = encodeModel({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'input_gradient', node: builder.nodes, initializer: builder.initializers, input: builder.inputs, output: builder.outputs } });
    const session = await OrtModel.open(model, 'input gradient', { device: 'cpu' });
    const pixels = randomPixels(1, size, 3, 11);
    const run = async (data: Float32Array) => session.run({ [names.images]: { data, dims } }, [names.features, 'image_gradient']);
    const objective = async (data: Float32Array) => (await run(data)).features.data.reduce((sum, value, i) => sum + value * direction[i], 0);
    const gradient = (await run(pixels)).image_gradient.data;
    const largest = Math.max(...Array.from(gradient, Math.abs));
    assert.ok(largest > 0, 'a non-zero gradient');
    // The pixels with the largest gradients, by central differences in float32.
    const order = Array.from(gradient.keys()).sort((a, b) => Math.abs(gradient[b]) - Math.abs(gradient[a])).slice(0, 4);
    const step = 1e-2;
    // float32 rounding of the objective, divided by the step: the floor below which differences are noise
    const base = (await run(pixels)).features.data;
    const noise = (8 * 2 ** -23 * base.reduce((sum, value, i) => sum + Math.abs(value * direction[i]), 0)) / (2 * step);
    for (const at of order) {
      const plus = Float32Array.from(pixels);
      const minus = Float32Array.from(pixels);
      plus[at] += step;
      minus[at] -= step;
      const difference = ((await objective(plus)) - (await objective(minus))) / (2 * step);
      assert.ok(Math.abs(difference - gradient[at]) <= 0.05 * largest + noise, `${fixture.file} pixel ${at}: finite difference ${difference}, gradient ${gradient[at]} (largest ${largest}, noise ${noise})`);
    }
    // Along a random direction over all pixels the change is larger than rounding, so the step can be small enough
    // to cross few ReLU and max-pool kinks (at 1e-2 it crosses many): within 5 %.
    const along = Float32Array.from(pixels, () => random.normal());
    const small = 1e-4;
    const shifted = (sign: number) => Float32Array.from(pixels, (value, i) => value + sign * small * along[i]);
    const directional = ((await objective(shifted(1))) - (await objective(shifted(-1)))) / (2 * small);
    const predicted = gradient.reduce((sum, value, i) => sum + value * along[i], 0);
    assert.ok(Math.abs(directional - predicted) <= 0.05 * Math.abs(predicted) + (noise * step) / small, `${fixture.file} along a direction: finite difference ${directional}, gradient ${predicted}`);
    await Promise.all([session.dispose(), backbone.dispose()]);
    disposeModel(head);
  });
}

test('imported graph: an opset the rules do not read is refused with the fix, before any session opens', () => {
  const model = decodeModel(readFileSync(path.join(fixtures, 'resnet_tiny.onnx')));
  model.opsetImport = [{ domain: '', version: 9 }];
  const graph = parseOnnx(encodeModel(model), 'old.onnx');
  const head = createHeadModel(12, { projectionHiddenDim: 8, projectionDim: 4, prototypes: 3 }, createRandom(1));
  assert.throws(
    () => importedGraphs(encodeModel(model), graph, resolveBackboneInput(graph), head, () => new Map()),
    (error: unknown) => error instanceof OnnxModelError && error.code === 'UNSUPPORTED_MODEL' && /opset 9/.test(error.message) && /opset_version=17/.test(error.message),
  );
  disposeModel(head);
});

test('imported graph: an operator without a gradient rule is named with its node, and features still work', async () => {
  const file = path.join(fixtures, 'unsupported_sin.onnx');
  const bytes = readFileSync(file);
  const graph = parseOnnx(bytes, file);
  const input = resolveBackboneInput(graph);
  const probe = await probeBackbone(bytes, graph, input.name, [1, 3, 8, 8]);
  const builder = new DifferentiableGraph();
  const image = builder.input('x', [1, 3, 8, 8], true);
  assert.throws(
    () => emitBackbone(builder, importedBackbone(bytes, graph, input.name, input.featureOutput, probe, [1, 3, 8, 8]), image, [input.featureOutput]),
    (error: unknown) => error instanceof OnnxModelError && error.code === 'UNSUPPORTED_MODEL' && error.where.operator === 'Sin' && error.where.node === '/Sin' && error.message.includes(file),
  );
  const backbone = await OrtBackbone.fromBytes(bytes, graph, { device: 'cpu' });
  assert.equal((await backbone.features(randomPixels(1, 8, 3), 1, 8, 8, 3)).length, 4);
  await backbone.dispose();
});

test("imported graphs on the GPU: the CAMs' target gradients and 5 counterfactual steps match the cpu provider", { skip: skipWithoutGpu, timeout: 600_000 }, async () => {
  for (const fixture of importFixtures.filter((entry) => ['tv_resnet18_narrow.onnx', 'tv_mobilenet_v3_small.onnx', 'tv_vit_tiny.onnx', 'dino_vit_tiny.onnx'].includes(entry.file))) {
    const { bytes, graph, input, backbone } = await setUp(fixture.file);
    const size = fixture.sizePx;
    const featureDim = (await backbone.features(randomPixels(1, size, 3), 1, size, size, 3)).length;
    const head = createHeadModel(featureDim, { projectionHiddenDim: 16, projectionDim: 8, prototypes: 5 }, createRandom(6));
    const graphs = importedGraphs(bytes, graph, input, head, () => weightsOf(head));
    const net = { graphs, prototypes: 5, temperature: 0.1 };
    const pixels = randomPixels(1, size, 3, 13);
    const target = { kind: 'prototype' as const, prototype: 1 };
    const [cpu, gpu] = [await targetGradients(net, pixels, 1, size, target, 'layer', 1, 'cpu'), await targetGradients(net, pixels, 1, size, target, 'layer', 1, 'webgpu')];
    assert.equal(gpu.device, 'webgpu');
    assert.ok(Math.abs(cpu.values[0] - gpu.values[0]) < 1e-3, `${fixture.file}: target values ${cpu.values[0]}, ${gpu.values[0]}`);
    const scale = (values: Float32Array) => Math.max(...Array.from(values, Math.abs), 1e-12);
    assert.ok(maxDifference(cpu.layer!.activations, gpu.layer!.activations) < 1e-3 * scale(cpu.layer!.activations), `${fixture.file}: layer activations differ by ${maxDifference(cpu.layer!.activations, gpu.layer!.activations)}`);
    assert.ok(maxDifference(cpu.layer!.gradients, gpu.layer!.gradients) < 1e-3 * scale(cpu.layer!.gradients), `${fixture.file}: layer gradients differ by ${maxDifference(cpu.layer!.gradients, gpu.layer!.gradients)}`);
    const options = resolveExplainOptions({ counterfactualSteps: 5, counterfactualMargin: 1 });
    const [cpuEdit, gpuEdit] = [await counterfactual(graphs, pixels, size, 0.1, 2, options, undefined, 'cpu'), await counterfactual(graphs, pixels, size, 0.1, 2, options, undefined, 'webgpu')];
    assert.equal(gpuEdit.device, 'webgpu');
    assert.ok(maxDifference(cpuEdit.pixels, gpuEdit.pixels) < 1e-2, `${fixture.file}: edited pixels differ by ${maxDifference(cpuEdit.pixels, gpuEdit.pixels)}`);
    assert.ok(maxDifference(cpuEdit.probabilities, gpuEdit.probabilities) < 1e-3, `${fixture.file}: probabilities after the edit`);
    closeExplainSessions();
    await backbone.dispose();
    disposeModel(head);
  }
});

/** cos(a, b) in float64. */
function cosine64(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let [dot, aa, bb] = [0, 0, 0];
  for (let i = 0; i < a.length; i++) [dot, aa, bb] = [dot + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
  return dot / Math.sqrt(aa * bb);
}

/** The mask counterfactual's classification term per image, softplus(1 − (z_t − log Σ_{k≠t} e^{z_k})), z = scores / T, in float64. */
function maskLoss(scores: Float32Array, prototypes: number, target: number, temperature: number): number[] {
  return Array.from({ length: scores.length / prototypes }, (_, n) => {
    const z = Array.from(scores.subarray(n * prototypes, (n + 1) * prototypes), (score) => score / temperature);
    const others = z.filter((_, k) => k !== target);
    const highest = Math.max(...others);
    const margin = z[target] - (highest + Math.log(others.reduce((sum, value) => sum + Math.exp(value - highest), 0)));
    return Math.log1p(Math.exp(1 - margin));
  });
}

for (const file of ['tv_vit_tiny.onnx', 'tv_resnet18_narrow.onnx']) {
  test(`imported graph ${file}: the mask counterfactual's gradient graph gives its loss, and a gradient at the blended images that matches finite differences`, async () => {
    const fixture = importFixtures.find((entry) => entry.file === file)!;
    const { bytes, graph, input, backbone } = await setUp(file);
    const size = fixture.sizePx;
    const featureDim = (await backbone.features(randomPixels(1, size, 3), 1, size, size, 3)).length;
    const head = createHeadModel(featureDim, { projectionHiddenDim: 16, projectionDim: 8, prototypes: 5 }, createRandom(8));
    const graphs = importedGraphs(bytes, graph, input, head, () => weightsOf(head));
    const batch = 2;
    const dims = [batch, size, size, 3];
    // One image twice (the batch's rows must not mix), its top prototype the target, at the temperature where its
    // margin is 1: the softplus sits at its bend (σ(1 − margin) = ½), neither saturated at 0 nor in its linear part.
    const single = randomPixels(1, size, 3, 21);
    const pixels = new Float32Array(batch * single.length);
    for (let n = 0; n < batch; n++) pixels.set(single, n * single.length);
    const probe = await OrtModel.open(await graphs.maskGradient({ batch, imageSizePx: size, temperature: 1 }), 'mask gradient', { device: 'cpu' });
    const first = (await probe.run({ [names.images]: { data: pixels, dims }, [names.target]: { data: new Float32Array(batch * 5), dims: [batch, 5] } }, [names.scores]))[names.scores].data;
    await probe.dispose();
    const target = Array.from(first.subarray(0, 5)).indexOf(Math.max(...first.subarray(0, 5)));
    let [low, high] = [1e-4, 1e2];
    for (let i = 0; i < 60; i++) {
      const middle = Math.sqrt(low * high);
      // softplus(1 − margin) = log 2 where the margin is 1; the margin falls as the temperature rises.
      if (maskLoss(first.subarray(0, 5), 5, target, middle)[0] < Math.log(2)) low = middle;
      else high = middle;
    }
    const temperature = Math.sqrt(low * high);
    const session = await OrtModel.open(await graphs.maskGradient({ batch, imageSizePx: size, temperature }), 'mask gradient', { device: 'cpu' });
    const oneHot = Float32Array.from({ length: batch * 5 }, (_, i) => (i % 5 === target ? 1 : 0));
    const run = (data: Float32Array) => session.run({ [names.images]: { data, dims }, [names.target]: { data: oneHot, dims: [batch, 5] } }, [names.loss, names.imageGradient, names.scores]);
    const at = await run(pixels);
    // The loss the graph differentiates is the one maskCounterfactual.ts minimises (from the graph's scores, which the forward test checks).
    const expected = maskLoss(at[names.scores].data, 5, target, temperature);
    assertClose(at[names.loss].data, Float32Array.from(expected), 1e-4, `${file} mask loss`);
    const objective = async (data: Float32Array) => maskLoss((await run(data))[names.scores].data, 5, target, temperature).reduce((a, b) => a + b, 0);
    const gradient = at[names.imageGradient].data;
    assert.ok(gradient.some((value) => value !== 0), 'a non-zero gradient');
    // Along the gradient (step 1e-3), then along random directions over all pixels of both images (step 1e-4, to
    // cross few ReLU and max-pool kinks): within 5 %, plus float32 rounding of the scores.
    const random = createRandom(22);
    const largest = Math.max(...Array.from(gradient, Math.abs));
    for (let trial = 0; trial < 3; trial++) {
      const small = trial === 0 ? 1e-3 : 1e-4;
      const along = trial === 0 ? gradient.map((value) => value / largest) : Float32Array.from(pixels, () => random.normal());
      const shifted = (sign: number) => Float32Array.from(pixels, (value, i) => value + sign * small * along[i]);
      const directional = ((await objective(shifted(1))) - (await objective(shifted(-1)))) / (2 * small);
      const predicted = gradient.reduce((sum, value, i) => sum + value * along[i], 0);
      const noise = (8 * 2 ** -23 * at[names.scores].data.reduce((sum, score) => sum + Math.abs(score / temperature), 0)) / (2 * small);
      assert.ok(Math.abs(directional - predicted) <= 0.05 * Math.abs(predicted) + noise, `${file} along direction ${trial}: finite difference ${directional}, gradient ${predicted} (noise ${noise})`);
    }
    await Promise.all([session.dispose(), backbone.dispose()]);
    disposeModel(head);
  });
}
