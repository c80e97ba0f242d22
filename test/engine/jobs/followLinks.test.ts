// Links out of the images folder: skipped with a reason that names the way to follow them; followed when the run
// asks (--follow-links, clusterLens.followLinks), and the run keeps asking for its index and its evaluation.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { silentContext } from '../../../src/engine/jobContext';
import { evaluateRun } from '../../../src/engine/jobs/evaluate';
import { indexRun } from '../../../src/engine/jobs/indexQueries';
import { train } from '../../../src/engine/jobs/train';
import { runPath } from '../../../src/engine/runFolder';
import type { TrainOptions } from '../../../src/protocol/options';
import { tempDir } from '../../tempDir';

const options: Partial<TrainOptions> = { imageSizePx: 16, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 4, batchSize: 8, localCrops: 0, epochs: 1, minutes: 0, device: 'cpu' };
let imagesDir: string;

before(async () => {
  // squares/ holds 8 images; stripes/ holds 8 links to images kept in a dataset store outside the folder.
  imagesDir = tempDir('cl-links-images-');
  const store = tempDir('cl-links-store-');
  mkdirSync(path.join(imagesDir, 'squares'));
  mkdirSync(path.join(imagesDir, 'stripes'));
  for (let i = 0; i < 8; i++) {
    const square = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16"/><rect x="${2 + (i % 4)}" y="4" width="8" height="8" fill="white"/></svg>`;
    const stripe = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16"/><rect y="${i % 4}" width="16" height="3" fill="#999"/></svg>`;
    await sharp(Buffer.from(square)).png().toFile(path.join(imagesDir, 'squares', `${i}.png`));
    await sharp(Buffer.from(stripe)).png().toFile(path.join(store, `${i}.png`));
    symlinkSync(path.join(store, `${i}.png`), path.join(imagesDir, 'stripes', `${i}.png`));
  }
});

test('links out of the images folder are skipped, each with a reason that says how to follow them', async () => {
  const runDir = path.join(tempDir('cl-links-run-'), 'run');
  const trained = await train({ imagesDir, runDir, options }, silentContext());
  assert.equal(trained.images, 8);
  const skipped = trained.skipped.filter((entry) => entry.path.startsWith('stripes/'));
  assert.equal(skipped.length, 8);
  for (const entry of skipped) assert.match(entry.reason, /outside the images folder.*--follow-links.*clusterLens\.followLinks/);
});

test('followLinks trains on the linked images, and the run keeps it for its index and evaluation', async () => {
  const runDir = path.join(tempDir('cl-links-run-'), 'run');
  const trained = await train({ imagesDir, runDir, options: { ...options, followLinks: true } }, silentContext());
  assert.equal(trained.images, 16);
  assert.deepEqual(trained.skipped, []);
  const manifest = JSON.parse(readFileSync(runPath(runDir, 'manifest'), 'utf8')) as { options: TrainOptions };
  assert.equal(manifest.options.followLinks, true);
  // Re-indexing scans the folder again: with the run's choice, the same 16 images.
  const indexed = await indexRun(runDir, silentContext());
  assert.equal(indexed.images, 16);
  const evaluated = await evaluateRun(runDir, silentContext(), { pixelBaseline: true });
  assert.equal(evaluated.images, 16);
  assert.ok(evaluated.pixels, 'the pixel baseline rescanned the folder and found the linked images');
});
