// Indexing runs through onnxruntime (the ONNX export, in memory): its rows must equal the engine's eval graphs
// (buildForwardGraph and headGraph, built separately over the same layout) and a plain-JS forward pass.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { loadImageSet } from '../../../src/engine/data/decode';
import { scanImageFolder } from '../../../src/engine/data/scan';
import { silentContext } from '../../../src/engine/jobContext';
import { checkpointPath, loadCheckpoint } from '../../../src/engine/model/checkpoint';
import { disposeModel, featureDim as featureDimOf, normalizeRowsInPlace, weightsOf, type SwavModel } from '../../../src/engine/model/model';
import { buildForwardGraph, headGraph } from '../../../src/engine/runtime/explainGraph';
import { OrtModel } from '../../../src/engine/runtime/session';
import { assertClose, referenceForward } from '../onnx/helpers';
import { embedWithOnnxRuntime } from '../../../src/engine/index/ortEmbed';
import { findNeighbours } from '../../../src/engine/jobs/indexQueries';
import { train } from '../../../src/engine/jobs/train';
import { tempDir } from '../../tempDir';

/** Two folders of `count` 20 px images each: a warm or a cold square placed differently on black. */
async function squaresFolder(prefix: string, count: number): Promise<string> {
  const imagesDir = tempDir(prefix);
  for (const [label, colour] of [['warm', '#d42'], ['cold', '#28c']] as const) {
    mkdirSync(path.join(imagesDir, label));
    for (let i = 0; i < count; i++) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><rect width="20" height="20" fill="#111"/><rect x="${i % 6}" y="${(i * 3) % 7}" width="9" height="9" fill="${colour}"/></svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(imagesDir, label, `${i}.png`));
    }
  }
  return imagesDir;
}

/** The eval graphs' rows for NHWC `pixels` in [0, 1]: features (L2-normalised, as the index keeps them), embeddings and scores. */
async function evalGraphRows(model: SwavModel, pixels: Float32Array, count: number, sizePx: number) {
  const weights = weightsOf(model);
  const forward = await OrtModel.open(buildForwardGraph(model.spec, weights, { batch: count, imageSizePx: sizePx }), 'forward', { device: 'cpu' });
  const featureDim = featureDimOf(model.spec);
  const head = await OrtModel.open(headGraph(weights, { batch: count, featureDim }), 'head', { device: 'cpu' });
  try {
    const out = await forward.run({ images: { data: pixels, dims: [count, sizePx, sizePx, model.spec.channels] } }, ['features', 'scores']);
    const features = out.features.data as Float32Array;
    const { embedding } = await head.run({ features: { data: features, dims: [count, featureDim] } }, ['embedding']);
    return { features: normalizeRowsInPlace(Float32Array.from(features), featureDim), embeddings: embedding.data as Float32Array, scores: out.scores.data as Float32Array };
  } finally {
    await Promise.all([forward.dispose(), head.dispose()]);
  }
}

test('onnxruntime indexing gives the eval graphs\' and a plain-JS forward pass\'s features, embeddings and scores', async () => {
  const imagesDir = await squaresFolder('cl-ort-embed-', 10);
  const runDir = tempDir('cl-ort-run-');
  const options = { imageSizePx: 16, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 5, batchSize: 10, localCrops: 1, localCropSizePx: 8, epochs: 2, minutes: 0 };
  await train({ imagesDir, runDir, options, index: false }, silentContext());
  const { model } = await loadCheckpoint(checkpointPath(runDir));
  const images = await loadImageSet(await scanImageFolder(imagesDir), { imageSizePx: 16, channels: 3 });
  const count = images.records.length;
  const viaOrt = await embedWithOnnxRuntime(model, images, silentContext(), [0, 1]);
  const pixels = Float32Array.from(images.pixels, (v) => v / 255);
  const viaGraphs = await evalGraphRows(model, pixels, count, 16);
  const reference = referenceForward(model.spec, model.variables, pixels, count, 16);
  const viaReference = { features: normalizeRowsInPlace(reference.features, reference.features.length / count), embeddings: reference.embedding, scores: reference.scores };
  const dims = { features: 8, embeddings: 8, scores: 5 };
  for (const key of ['features', 'embeddings', 'scores'] as const) {
    assert.equal(viaOrt[key].rows, 20);
    assert.equal(viaOrt[key].dims, dims[key]);
    assertClose(viaOrt[key].data, viaGraphs[key], 1e-4, `${key} against the eval graphs`);
    assertClose(viaOrt[key].data, viaReference[key], 1e-4, `${key} against the plain-JS forward`);
  }
  // The two classes' images are not all the same row (the rows follow their images).
  assert.ok(viaOrt.embeddings.data.subarray(0, 8).some((v, d) => Math.abs(v - viaOrt.embeddings.data[8 * 19 + d]) > 1e-4));
  disposeModel(model);
});

test('neighbours of an image outside the index: embedded by the forward graph as the index was, its copy found first', async () => {
  const imagesDir = await squaresFolder('cl-outside-images-', 8);
  const runDir = tempDir('cl-outside-run-');
  const options = { imageSizePx: 16, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 5, batchSize: 8, localCrops: 1, localCropSizePx: 8, epochs: 2, minutes: 0 };
  await train({ imagesDir, runDir, options }, silentContext());
  // A copy of an indexed image, outside the images folder: it is embedded on the spot.
  const outside = path.join(tempDir('cl-outside-copy-'), 'copy.png');
  copyFileSync(path.join(imagesDir, 'cold', '3.png'), outside);
  const inside = await findNeighbours(runDir, 'cold/3.png', 3, silentContext());
  const found = await findNeighbours(runDir, outside, 3, silentContext());
  assert.equal(found.neighbours[0].path, 'cold/3.png');
  assert.ok(found.neighbours[0].similarity > 0.9999, `similarity ${found.neighbours[0].similarity}`);
  assert.equal(found.cluster, inside.cluster, 'the same cluster as the indexed original');
});
