// A run on a frozen imported ONNX backbone, end to end: train, index, neighbours, evaluate, explain, export;
// and bad ONNX files through the real engine process (dist/engine.js, built by `node esbuild.mjs`).
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { evaluateRun } from '../../../src/engine/jobs/evaluate';
import { loadImageSet } from '../../../src/engine/data/decode';
import { scanImageFolder } from '../../../src/engine/data/scan';
import { explainImage } from '../../../src/engine/jobs/explain';
import { readIndex } from '../../../src/engine/index/indexer';
import { forgetRun } from '../../../src/engine/index/runQueries';
import { findNeighbours, indexRun } from '../../../src/engine/jobs/indexQueries';
import { silentContext } from '../../../src/engine/jobContext';
import { loadCheckpoint } from '../../../src/engine/model/checkpoint';
import { disposeModel } from '../../../src/engine/model/model';
import { exportOnnx } from '../../../src/engine/jobs/exportOnnx';
import { frozenBackbonePath } from '../../../src/engine/frozen/backboneFile';
import { trainFrozenBackbone } from '../../../src/engine/jobs/trainFrozen';
import { OrtModel } from '../../../src/engine/runtime/session';
import { EngineClient, EngineRequestError } from '../../../src/host/engineClient';
import type { TrainOptions } from '../../../src/protocol/options';
import { assertClose, fixtures, toNchw } from '../onnx/helpers';
import { tempDir } from '../../tempDir';

process.env.CLUSTER_LENS_THREADS ??= '1';
const enginePath = path.resolve(__dirname, '../../..', 'dist', 'engine.js');
const options: Partial<TrainOptions> = { epochs: 3, minutes: 0, batchSize: 8, prototypes: 4, projectionHiddenDim: 16, projectionDim: 8, localCrops: 1, freezePrototypesSteps: 0 };
let imagesDir: string;
let scratch: string;

before(async () => {
  scratch = tempDir('cl-frozen-');
  imagesDir = path.join(scratch, 'images');
  for (const [label, draw] of [['squares', (i: number) => `<rect x="${4 + (i % 5)}" y="${4 + (i % 3)}" width="14" height="14" fill="white"/>`], ['stripes', (i: number) => `<rect x="0" y="${i % 7}" width="32" height="6" fill="#888"/><rect x="0" y="${16 + (i % 5)}" width="32" height="6" fill="#888"/>`]] as const) {
    mkdirSync(path.join(imagesDir, label), { recursive: true });
    for (let i = 0; i < 8; i++) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32" fill="black"/>${draw(i)}</svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(imagesDir, label, `${i}.png`));
    }
  }
});

test('frozen run: trains the head on onnxruntime features, then indexes, finds neighbours, evaluates, explains and exports', async () => {
  // The original is a copy that then disappears: the run must keep working from its own copy.
  const original = path.join(scratch, 'resnet_tiny.onnx');
  copyFileSync(path.join(fixtures, 'resnet_tiny.onnx'), original);
  const runDir = path.join(scratch, 'run');
  const trained = await trainFrozenBackbone({ imagesDir, runDir, options: { ...options, backbone: original } }, silentContext());
  assert.deepEqual([trained.images, trained.epochs, trained.steps, trained.cancelled], [16, 3, 6, false]);
  assert.ok(Number.isFinite(trained.finalLoss));
  assert.ok(trained.indexPath && existsSync(trained.indexPath));
  assert.deepEqual(readFileSync(frozenBackbonePath(runDir)), readFileSync(original));
  writeFileSync(original, 'moved away');

  const checkpoint = await loadCheckpoint(trained.checkpointPath);
  assert.equal(checkpoint.header.backbone?.path, original);
  assert.equal(checkpoint.header.backbone?.imageSizePx, 16, 'the image size follows the model');
  assert.equal(checkpoint.header.spec.width, 12, 'the head sits on the 12 backbone features');
  assert.ok([...checkpoint.model.variables.keys()].every((name) => name.startsWith('head.') || name === 'prototypes'));
  disposeModel(checkpoint.model);

  // Rebuilding the index gives the same rows as training wrote.
  const fromTraining = await readIndex(runDir);
  const indexed = await indexRun(runDir, silentContext());
  assert.equal(indexed.images, 16);
  const rebuilt = await readIndex(runDir);
  assertClose(rebuilt.features.data, fromTraining.features.data, 1e-5, 'features');
  assertClose(rebuilt.embeddings.data, fromTraining.embeddings.data, 1e-5, 'embeddings');
  assert.deepEqual(rebuilt.assignments, fromTraining.assignments);

  // Neighbours of an indexed image, and of the same pixels from outside the folder (through onnxruntime).
  const inside = await findNeighbours(runDir, 'squares/0.png', 3, silentContext());
  assert.equal(inside.neighbours.length, 3);
  assert.ok(inside.neighbours.every((n) => n.path !== 'squares/0.png' && n.similarity <= 1 + 1e-6));
  const outsidePath = path.join(scratch, 'outside.png');
  copyFileSync(path.join(imagesDir, 'squares', '0.png'), outsidePath);
  const outside = await findNeighbours(runDir, outsidePath, 1, silentContext());
  assert.equal(outside.neighbours[0].path, 'squares/0.png');
  assert.ok(Math.abs(outside.neighbours[0].similarity - 1) < 1e-5, `similarity ${outside.neighbours[0].similarity}`);
  assert.equal(outside.cluster, inside.cluster);

  const evaluated = await evaluateRun(runDir, silentContext());
  assert.equal(evaluated.images, 16);
  // Squares against stripes, 8 each: chance is accuracy 0.5, kNN 0.5 and NMI 0. The frozen backbone's features
  // separate them (measured: k-means accuracy 0.875, NMI 0.56, kNN 0.875 at k = 7, one less than a class holds).
  assert.ok(evaluated.acc >= 0.75, `k-means accuracy ${evaluated.acc}`);
  assert.ok(evaluated.nmi > 0.3, `NMI ${evaluated.nmi}`);
  assert.equal(evaluated.knn_k, 7);
  assert.ok(evaluated.knn >= 0.75, `kNN accuracy ${evaluated.knn}`);
  assert.ok(evaluated.proto_acc >= 0.5 && evaluated.proto_acc <= 1, `prototype accuracy ${evaluated.proto_acc}`);

  // Grad-CAM and occlusion, through gradient graphs built from the ONNX graph itself (runtime/importedGraph.ts) on onnxruntime.
  const gradcam = await explainImage({ runDir, image: 'squares/1.png', method: 'gradcam' }, silentContext());
  assert.deepEqual([gradcam.imageSizePx, gradcam.heatmap.widthPx, gradcam.heatmap.values.length], [16, 16, 256]);
  assert.ok(gradcam.heatmap.values.every((v) => v >= 0 && v <= 1) && gradcam.heatmap.values.some((v) => v > 0));
  assert.equal(gradcam.cluster, fromTraining.assignments[fromTraining.header.records.findIndex((r) => r.path === 'squares/1.png')]);
  const occlusion = await explainImage({ runDir, image: 'squares/1.png', method: 'conditional-occlusion' }, silentContext());
  assert.equal(occlusion.target.kind, 'similarity');
  assert.equal(occlusion.heatmap.values.length, 256);
  assert.ok(occlusion.heatmap.values.every(Number.isFinite));
  forgetRun(runDir); // frees the cached head

  // The export is the backbone with the head appended; onnxruntime reproduces the index's embeddings.
  const outPath = path.join(scratch, 'exported.onnx');
  const exported = await exportOnnx(runDir, outPath);
  assert.deepEqual([exported.featureDim, exported.imageSizePx, exported.prototypes], [12, 16, 4]);
  const images = await loadImageSet(await scanImageFolder(imagesDir), { imageSizePx: 16, channels: 3 });
  // The export reads normalised pixels (ImageNet's mean and std, the run's default for RGB backbones; in its metadata).
  const imagenet = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
  const pixels = Float32Array.from(images.pixels, (v, i) => (v / 255 - imagenet.mean[i % 3]) / imagenet.std[i % 3]);
  const model = await OrtModel.open(readFileSync(outPath), outPath);
  const out = await model.run({ images: { data: toNchw(pixels, 16, 16, 3), dims: [16, 3, 16, 16] } }, ['embedding', 'prototype_scores']);
  await model.dispose();
  assertClose(out.embedding.data, fromTraining.embeddings.data, 1e-4, 'exported embedding');

  await assert.rejects(trainFrozenBackbone({ imagesDir, runDir, resume: true }, silentContext()), (error: Error & { code?: string }) => error.code === 'BAD_REQUEST' && /not supported/.test(error.message));
  forgetRun(runDir);
});

test('frozen run: corrupt and unsupported ONNX files get BAD_MODEL and UNSUPPORTED_MODEL from the engine process, which stays up', async () => {
  assert.ok(existsSync(enginePath), 'run "node esbuild.mjs" first');
  const corrupt = path.join(scratch, 'corrupt.onnx');
  writeFileSync(corrupt, readFileSync(path.join(fixtures, 'resnet_tiny.onnx')).subarray(0, 500));
  const client = new EngineClient({ enginePath });
  const rejectsWith = (code: string, ...patterns: RegExp[]) => (error: EngineRequestError) => {
    assert.equal(error.code, code, error.message);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  };
  const escaped = (file: string) => new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  try {
    await assert.rejects(client.request({ type: 'train', imagesDir, runDir: path.join(scratch, 'corrupt-run'), options: { ...options, backbone: corrupt } }), rejectsWith('BAD_MODEL', escaped(corrupt)));
    const pid = client.pid;
    // onnxruntime runs the Sin graph, so training works; Grad-CAM's layer comes after Sin, so it works too; the
    // pixel counterfactual needs Sin's gradient, and names the operator and its node.
    const sin = path.join(fixtures, 'unsupported_sin.onnx');
    const runDir = path.join(scratch, 'sin-run');
    const trained = await client.request({ type: 'train', imagesDir, runDir, options: { ...options, epochs: 1, backbone: sin } });
    assert.equal(trained.images, 16);
    const gradcam = await client.request({ type: 'explain', runDir, image: 'squares/0.png', method: 'gradcam' });
    assert.ok(gradcam.heatmap.values.some((value) => value > 0));
    await assert.rejects(client.request({ type: 'explain', runDir, image: 'squares/0.png', method: 'counterfactual-pixel' }), rejectsWith('UNSUPPORTED_MODEL', /operator Sin/, /node '\/Sin'/, escaped(path.join(runDir, 'backbone.onnx'))));
    const neighbours = await client.request({ type: 'neighbours', runDir, image: 'squares/0.png', k: 2 });
    assert.equal(neighbours.neighbours.length, 2);
    assert.equal(client.pid, pid, 'the engine survived');
  } finally {
    await client.dispose();
  }
});
