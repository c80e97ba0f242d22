// Indexing runs through onnxruntime: its embeddings must equal the tfjs forward pass.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { initBackend } from '../../../src/engine/runtime/tfjs/backend';
import { loadImageSet } from '../../../src/engine/data/decode';
import { scanImageFolder } from '../../../src/engine/data/scan';
import { embedImageSet } from '../../../src/engine/index/indexer';
import { silentContext } from '../../../src/engine/jobContext';
import { checkpointPath, loadCheckpoint } from '../../../src/engine/model/checkpoint';
import { disposeModel } from '../../../src/engine/model/model';
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

test('onnxruntime indexing gives the tfjs embeddings, features and scores', async () => {
  await initBackend('wasm');
  const imagesDir = await squaresFolder('cl-ort-embed-', 10);
  const runDir = tempDir('cl-ort-run-');
  const options = { imageSizePx: 16, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 5, batchSize: 10, localCrops: 1, localCropSizePx: 8, epochs: 2, minutes: 0, backend: 'wasm' as const };
  await train({ imagesDir, runDir, options, index: false }, silentContext());
  const { model } = await loadCheckpoint(checkpointPath(runDir));
  const images = await loadImageSet(await scanImageFolder(imagesDir), { imageSizePx: 16, channels: 3 });
  const viaTfjs = await embedImageSet(model, images, silentContext());
  const viaOrt = await embedWithOnnxRuntime(model, images, silentContext(), [0, 1]);
  for (const key of ['features', 'embeddings', 'scores'] as const) {
    assert.equal(viaOrt[key].rows, 20);
    assert.equal(viaOrt[key].dims, viaTfjs[key].dims);
    const difference = viaOrt[key].data.reduce((max, v, i) => Math.max(max, Math.abs(v - viaTfjs[key].data[i])), 0);
    assert.ok(difference < 1e-4, `${key} differ by ${difference}`);
  }
  disposeModel(model);
});

test('neighbours of an image outside the index: embedded by the forward graph as the index was, its copy found first', async () => {
  await initBackend('wasm');
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
