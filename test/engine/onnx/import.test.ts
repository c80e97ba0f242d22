// Import: committed PyTorch fixtures (scripts/onnx/make-fixtures.py) through onnxruntime and through tfjs,
// and clear errors for unsupported and corrupt files.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/engine/runtime/tfjs/backend';
import { disposeModel, head } from '../../../src/engine/model/model';
import { importedGraphs, lastFeatureMapName } from '../../../src/engine/frozen/explainable';
import { closeExplainSessions, scoreImagesOnDevice, targetGradients, weightsOf } from '../../../src/engine/explain/onDevice';
import { resolveBackboneInput } from '../../../src/engine/onnx/backboneInput';
import { parseOnnx, readOnnxFile } from '../../../src/engine/onnx/graph';
import { createHeadModel } from '../../../src/engine/frozen/headTrainer';
import { OnnxModelError } from '../../../src/engine/onnx/onnxError';
import { OrtBackbone } from '../../../src/engine/frozen/ortBackbone';
import { decodeModel, encodeModel, withoutWeightInputs } from '../../../src/engine/onnx/schema';
import { OrtModel } from '../../../src/engine/runtime/session';
import { convertToTfjs } from '../../../src/engine/onnx/tfjsBackbone';
import { createRandom } from '../../../src/engine/util/random';
import { assertClose, fixtures, randomPixels, tensorOf, toNchw } from './helpers';
import { tempDir } from '../../tempDir';

const scratch = tempDir('cl-onnx-import-');

before(async () => {
  await initBackend('wasm');
});

async function compare(file: string, sizePx: number, imageChannels: number, options = {}) {
  const backbone = await OrtBackbone.open(file, options);
  const { graph } = await readOnnxFile(file);
  const converted = convertToTfjs(graph, options);
  const baseline = tf.memory().numTensors;
  const count = 4;
  const pixels = randomPixels(count, sizePx, imageChannels, sizePx);
  const expected = await backbone.features(pixels, count, sizePx, sizePx, imageChannels);
  const images = tensorOf(pixels, count, sizePx, imageChannels);
  const features = converted.features(images);
  assertClose(features.dataSync(), expected, 1e-4, path.basename(file));
  assert.equal(features.shape[0], count);
  // Gradients reach the input through every converted operator.
  const gradient = tf.grad((x: tf.Tensor) => tf.sum(tf.square(converted.features(x as tf.Tensor4D))))(images);
  const gradientValues = gradient.dataSync();
  assert.ok(gradientValues.every(Number.isFinite) && gradientValues.some((v) => v !== 0), 'input gradient is finite and non-zero');
  tf.dispose([images, features, gradient]);
  assert.equal(tf.memory().numTensors, baseline, 'no tensors left behind');
  converted.dispose();
  await backbone.dispose();
  return { featureDim: backbone.featureDim };
}

test('import: a tiny ResNet (Conv, BatchNormalization, MaxPool, Add, GlobalAveragePool, Flatten, Gemm) agrees between onnxruntime and tfjs', async () => {
  const { featureDim } = await compare(path.join(fixtures, 'resnet_tiny.onnx'), 16, 3);
  assert.equal(featureDim, 12);
});

test('import: torchvision ResNet-18 as exported (BatchNorm folded into Conv biases shared through Identity) converts to tfjs and agrees', async () => {
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

test('import: Grad-CAM on an imported graph: its last feature map, and the features computed onward from it', async () => {
  const { graph } = await readOnnxFile(path.join(fixtures, 'resnet_tiny.onnx'));
  const mapName = lastFeatureMapName(graph, 'features');
  assert.equal(mapName, '/layer2/Relu_1_output_0');
  const converted = convertToTfjs(graph);
  const baseline = tf.memory().numTensors;
  const images = tensorOf(randomPixels(2, 16, 3), 2, 16, 3);
  const [featureMap] = converted.values(images, [mapName]);
  assert.deepEqual(featureMap.shape, [2, 4, 4, 16], 'NHWC feature map');
  const direct = converted.features(images);
  const onward = converted.featuresFrom(mapName, featureMap);
  assertClose(onward.dataSync(), direct.dataSync(), 1e-6, 'features from the feature map');
  // Grad-CAM's weights: the gradient of one feature with respect to the map.
  const gradient = tf.grad((map: tf.Tensor) => tf.sum(tf.slice(converted.featuresFrom(mapName, map), [0, 3], [-1, 1])))(featureMap);
  assert.deepEqual(gradient.shape, featureMap.shape);
  assert.ok(gradient.dataSync().some((v) => v !== 0));
  tf.dispose([images, featureMap, direct, onward, gradient]);
  assert.equal(tf.memory().numTensors, baseline);

  // As the explanation methods see it, with a head on top: the onnxruntime graphs built from the ONNX graph take
  // Grad-CAM's layer at that map (the tfjs conversion's, NHWC there, NCHW here), and score the head on the features.
  const headModel = createHeadModel(12, { projectionHiddenDim: 8, projectionDim: 4, prototypes: 3 }, createRandom(1));
  const pixels = randomPixels(1, 16, 3, 9);
  const net = { graphs: importedGraphs(readFileSync(graph.file), graph, resolveBackboneInput(graph), headModel, () => weightsOf(headModel)), prototypes: 3, temperature: 0.1 };
  const gradients = await targetGradients(net, pixels, 1, 16, { kind: 'prototype', prototype: 1 }, 'layer', 1, 'cpu');
  const image = tensorOf(pixels, 1, 16, 3);
  const [map] = converted.values(image, [mapName]);
  const expected = head(headModel, converted.features(image), 'eval');
  const expectedScores = expected.scores.dataSync();
  assert.deepEqual([gradients.layer!.channels, gradients.layer!.height, gradients.layer!.width], [16, 4, 4]);
  assertClose(gradients.layer!.activations, toNchw(map.dataSync() as Float32Array, 1, 4, 16), 1e-4, "Grad-CAM's layer");
  assert.ok(Math.abs(gradients.values[0] - expectedScores[1]) < 1e-4, `prototype 1's score ${gradients.values[0]}, on tfjs ${expectedScores[1]}`);
  const { scores } = await scoreImagesOnDevice(net, pixels, 1, 16, 1, 'cpu');
  assertClose(scores, expectedScores, 1e-4, 'explainable scores');
  tf.dispose([image, map, expected.embedding, expected.scores]);
  closeExplainSessions();
  disposeModel(headModel);
  converted.dispose();
});

test('import: a conv-MLP (Reshape, Gemm, MatMul, ReduceMean) agrees, with grey-from-colour input and a normalisation', async () => {
  await compare(path.join(fixtures, 'conv_mlp_tiny.onnx'), 8, 1);
  await compare(path.join(fixtures, 'conv_mlp_tiny.onnx'), 8, 3, { inputMean: [0.5], inputStd: [0.25] });
});

test('import: an unsupported operator is named, with its node; onnxruntime still computes features', async () => {
  const file = path.join(fixtures, 'unsupported_sin.onnx');
  const { graph } = await readOnnxFile(file);
  assert.throws(
    () => convertToTfjs(graph),
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
  assert.throws(() => convertToTfjs(graph), (error: unknown) => error instanceof OnnxModelError && error.where.operator === 'NoSuchOperator');
  await assert.rejects(OrtBackbone.open(file), (error: unknown) => error instanceof OnnxModelError && error.message.includes(file) && error.message.includes('NoSuchOperator'));
});

test('import: images of the wrong size are refused with both sizes named', async () => {
  const backbone = await OrtBackbone.open(path.join(fixtures, 'resnet_tiny.onnx'));
  await assert.rejects(backbone.features(randomPixels(1, 12, 3), 1, 12, 12, 3), /16×16.*12×12/);
  await backbone.dispose();
});
