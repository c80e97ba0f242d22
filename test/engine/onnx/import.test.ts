// Import: committed PyTorch fixtures (scripts/onnx/make-fixtures.py) through onnxruntime, and through the graphs
// our own code rebuilds and differentiates from them (runtime/importedGraph.ts), and clear errors for unsupported
// and corrupt files.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { disposeModel, weightsOf } from '../../../src/engine/model/model';
import { checkExplainable, importedGraphs, lastFeatureMapName } from '../../../src/engine/frozen/explainable';
import { closeExplainSessions, scoreImagesOnDevice, targetGradients } from '../../../src/engine/explain/onDevice';
import type { ExplainableModel } from '../../../src/engine/explain/explainer';
import { resolveBackboneInput, type BackboneOptions } from '../../../src/engine/onnx/backboneInput';
import { parseOnnx, readOnnxFile } from '../../../src/engine/onnx/graph';
import { createHeadModel } from '../../../src/engine/frozen/headTrainer';
import { OnnxModelError } from '../../../src/engine/onnx/onnxError';
import { OrtBackbone } from '../../../src/engine/frozen/ortBackbone';
import { probeBackbone } from '../../../src/engine/runtime/importedGraph';
import { decodeModel, encodeModel, withoutWeightInputs } from '../../../src/engine/onnx/schema';
import { OrtModel } from '../../../src/engine/runtime/session';
import { createRandom } from '../../../src/engine/util/random';
import { assertClose, fixtures, randomPixels, toNchw } from './helpers';
import { tempDir } from '../../tempDir';

const scratch = tempDir('cl-onnx-import-');

after(closeExplainSessions);

/** The imported graph with a small random head, as the explanation methods see it. */
async function explainable(file: string, options: BackboneOptions = {}): Promise<{ net: ExplainableModel; dispose: () => void }> {
  const { bytes, graph } = await readOnnxFile(file);
  const input = resolveBackboneInput(graph, options);
  const probe = await probeBackbone(bytes, graph, input.name, [1, input.channels, input.heightPx ?? 16, input.widthPx ?? 16]);
  const featureDim = probe.get(input.featureOutput)!.dims[1];
  const headModel = createHeadModel(featureDim, { projectionHiddenDim: 8, projectionDim: 4, prototypes: 3 }, createRandom(1));
  return { net: { graphs: importedGraphs(bytes, graph, input, headModel, () => weightsOf(headModel)), prototypes: 3, temperature: 0.1 }, dispose: () => disposeModel(headModel) };
}

/** NHWC images with `from` channels as the graph's `to` channels, as the backbone's feature path feeds them: grey repeated, colour as luma. */
function inChannels(pixels: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return pixels;
  const count = pixels.length / from;
  return Float32Array.from({ length: count * to }, (_, i) => {
    const at = Math.floor(i / to) * from;
    return from === 1 ? pixels[at] : 0.299 * pixels[at] + 0.587 * pixels[at + 1] + 0.114 * pixels[at + 2];
  });
}

async function compare(file: string, sizePx: number, imageChannels: number, options: BackboneOptions = {}) {
  const backbone = await OrtBackbone.open(file, options);
  const { net, dispose } = await explainable(file, options);
  const count = 4;
  const pixels = randomPixels(count, sizePx, imageChannels, sizePx);
  const expected = await backbone.features(pixels, count, sizePx, sizePx, imageChannels);
  const images = inChannels(pixels, imageChannels, net.graphs.channels);
  const { features } = await scoreImagesOnDevice(net, images, count, sizePx, count, 'cpu');
  assertClose(features, expected, 1e-4, path.basename(file));
  // Gradients reach the pixels through every rebuilt operator.
  const references = Float32Array.from({ length: features.length }, (_, i) => Math.sin(i));
  const { imageGradients } = await targetGradients(net, images, count, sizePx, { kind: 'similarity', references }, 'image', count, 'cpu');
  assert.ok(imageGradients!.every(Number.isFinite) && imageGradients!.some((v) => v !== 0), 'the pixel gradient is finite and non-zero');
  closeExplainSessions();
  dispose();
  await backbone.dispose();
  return { featureDim: backbone.featureDim };
}

test('import: a tiny ResNet (Conv, BatchNormalization, MaxPool, Add, GlobalAveragePool, Flatten, Gemm) agrees between onnxruntime and our graph of it', async () => {
  const { featureDim } = await compare(path.join(fixtures, 'resnet_tiny.onnx'), 16, 3);
  assert.equal(featureDim, 12);
});

test('import: torchvision ResNet-18 as exported (BatchNorm folded into Conv biases shared through Identity) agrees between onnxruntime and our graph of it', async () => {
  for (const file of ['tv_resnet18_narrow.onnx', 'tv_resnet18_narrow_opset13_inputs.onnx']) {
    const { featureDim } = await compare(path.join(fixtures, file), 64, 3, { inputMean: [0.485, 0.456, 0.406], inputStd: [0.229, 0.224, 0.225] });
    assert.equal(featureDim, 32);
  }
});

test('import: weights listed as graph inputs (keep_initializers_as_inputs) are dropped from the inputs, byte for byte otherwise', async () => {
  const file = path.join(fixtures, 'dino_vit_tiny.onnx');
  const bytes = readFileSync(file);
  const graph = parseOnnx(bytes, file);
  const before = decodeModel(bytes).graph!;
  assert.ok(before.input!.length > 10, 'the export lists its weights as inputs');
  const cleaned = withoutWeightInputs(bytes, new Set(graph.initializers.keys()));
  const after = decodeModel(cleaned).graph!;
  assert.deepEqual(after.input!.map((input) => input.name), ['images']);
  const summary = (nodes: typeof before.node) => nodes!.map((node) => [node.opType, node.input, node.output, node.attribute?.length]);
  assert.deepEqual(summary(after.node), summary(before.node));
  assert.deepEqual(after.initializer!.map((tensor) => tensor.name), before.initializer!.map((tensor) => tensor.name));
  assert.equal(withoutWeightInputs(cleaned, new Set(graph.initializers.keys())), cleaned, 'nothing to drop: the same bytes');
  // onnxruntime gives the same features either way.
  const pixels = randomPixels(2, 32, 3);
  const original = await OrtModel.open(bytes, file, { device: 'cpu' });
  const rewritten = await OrtBackbone.fromBytes(bytes, graph, { device: 'cpu' });
  const expected = (await original.run({ images: { data: toNchw(pixels, 2, 32, 3), dims: [2, 3, 32, 32] } }, ['features'])).features.data;
  assertClose(await rewritten.features(pixels, 2, 32, 32, 3), expected, 1e-6, 'features');
  await Promise.all([original.dispose(), rewritten.dispose()]);
});

test('import: Grad-CAM on an imported graph takes its last feature map, as onnxruntime computes it, with the head on the features', async () => {
  const file = path.join(fixtures, 'resnet_tiny.onnx');
  const { bytes, graph } = await readOnnxFile(file);
  const mapName = lastFeatureMapName(graph, 'features');
  assert.equal(mapName, '/layer2/Relu_1_output_0');
  const { net, dispose } = await explainable(file);
  const pixels = randomPixels(1, 16, 3, 9);
  const gradients = await targetGradients(net, pixels, 1, 16, { kind: 'prototype', prototype: 1 }, 'layer', 1, 'cpu');
  assert.deepEqual([gradients.layer!.channels, gradients.layer!.height, gradients.layer!.width], [16, 4, 4]);
  // onnxruntime's own run of the file, every value an output: the map there is NCHW, as the graphs' layer.
  const input = resolveBackboneInput(graph);
  const original = await OrtModel.open(withoutWeightInputs(bytes, new Set(graph.initializers.keys())), file, { device: 'cpu' });
  const { features } = await original.run({ [input.name]: { data: toNchw(pixels, 1, 16, 3), dims: [1, 3, 16, 16] } }, ['features']);
  await original.dispose();
  const probed = await probeBackbone(bytes, graph, input.name, [1, 3, 16, 16]);
  assert.deepEqual(probed.get(mapName)!.dims, [1, 16, 4, 4]);
  const scored = await scoreImagesOnDevice(net, pixels, 1, 16, 1, 'cpu');
  assertClose(scored.features, features.data, 1e-5, 'features');
  assert.ok(Math.abs(gradients.values[0] - scored.scores[1]) < 1e-5, `prototype 1's score ${gradients.values[0]} vs ${scored.scores[1]}`);
  assert.ok(gradients.layer!.gradients.some((value) => value !== 0), 'the layer gets a gradient');
  // The features are the map's spatial mean: each channel of the layer averages to its feature.
  const { activations } = gradients.layer!;
  const means = Float32Array.from({ length: 16 }, (_, c) => activations.subarray(c * 16, (c + 1) * 16).reduce((a, b) => a + b, 0) / 16);
  assert.ok(means.some((value) => value > 0), 'the map is not empty');
  closeExplainSessions();
  dispose();
});

test('import: a conv-MLP (Reshape, Gemm, MatMul, ReduceMean) agrees, with grey-from-colour input and a normalisation', async () => {
  await compare(path.join(fixtures, 'conv_mlp_tiny.onnx'), 8, 1);
  await compare(path.join(fixtures, 'conv_mlp_tiny.onnx'), 8, 3, { inputMean: [0.5], inputStd: [0.25] });
});

test('import: an unsupported operator is named, with its node; onnxruntime still computes features', async () => {
  const file = path.join(fixtures, 'unsupported_sin.onnx');
  const { bytes, graph } = await readOnnxFile(file);
  await assert.rejects(
    checkExplainable(bytes, graph, resolveBackboneInput(graph), 8),
    (error: unknown) =>
      error instanceof OnnxModelError &&
      error.problem === 'unsupported' &&
      error.where.operator === 'Sin' &&
      error.where.node === '/Sin' &&
      error.message.includes('Sin') &&
      error.message.includes(file),
  );
  const backbone = await OrtBackbone.open(file);
  const features = await backbone.features(randomPixels(2, 8, 3), 2, 8, 8, 3);
  assert.equal(features.length, 2 * 4);
  await backbone.dispose();
});

test('import: corrupt, missing and damaged files give errors naming the file and the problem', async () => {
  const good = readFileSync(path.join(fixtures, 'resnet_tiny.onnx'));
  const write = (name: string, bytes: Uint8Array | string) => {
    const file = path.join(scratch, name);
    writeFileSync(file, bytes);
    return file;
  };
  const cases: [string, string, RegExp][] = [
    [write('truncated.onnx', good.subarray(0, Math.floor(good.length / 2))), 'corrupt', /not a valid ONNX protobuf|truncated/],
    [write('empty.onnx', new Uint8Array()), 'corrupt', /empty/],
    [write('text.onnx', 'hello, this is not a model\n'.repeat(20)), 'corrupt', /not a valid ONNX protobuf|no graph/],
    [path.join(scratch, 'missing.onnx'), 'unreadable', /does not exist/],
  ];
  // A weight whose data is shorter than its shape says.
  const model = decodeModel(good);
  const initializer = model.graph!.initializer!.find((t) => t.name === 'fc.weight')!;
  initializer.rawData = initializer.rawData!.subarray(0, 100);
  cases.push([write('short-weight.onnx', encodeModel(model)), 'corrupt', /fc\.weight.*100 bytes.*needs 768/]);
  for (const [file, problem, pattern] of cases) {
    for (const open of [() => readOnnxFile(file), () => OrtBackbone.open(file)]) {
      await assert.rejects(open(), (error: unknown) => {
        assert.ok(error instanceof OnnxModelError, `${path.basename(file)}: ${String(error)}`);
        assert.equal(error.problem, problem, path.basename(file));
        assert.ok(error.message.includes(file), `message names the file: ${error.message}`);
        assert.match(error.message, pattern);
        return true;
      });
    }
  }
});

test('import: a graph onnxruntime rejects is reported by file, not thrown raw', async () => {
  const model = decodeModel(readFileSync(path.join(fixtures, 'conv_mlp_tiny.onnx')));
  model.graph!.node!.find((node) => node.opType === 'Relu')!.opType = 'NoSuchOperator';
  const file = path.join(scratch, 'unknown-op.onnx');
  writeFileSync(file, encodeModel(model));
  const graph = parseOnnx(readFileSync(file), file);
  await assert.rejects(checkExplainable(readFileSync(file), graph, resolveBackboneInput(graph), 8), (error: unknown) => error instanceof OnnxModelError && error.message.includes(file));
  await assert.rejects(OrtBackbone.open(file), (error: unknown) => error instanceof OnnxModelError && error.message.includes(file) && error.message.includes('NoSuchOperator'));
});

test('import: images of the wrong size are refused with both sizes named', async () => {
  const backbone = await OrtBackbone.open(path.join(fixtures, 'resnet_tiny.onnx'));
  await assert.rejects(backbone.features(randomPixels(1, 12, 3), 1, 12, 12, 3), /16×16.*12×12/);
  await backbone.dispose();
});
