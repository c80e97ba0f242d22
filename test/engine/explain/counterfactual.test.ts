// On a run trained on the shipped sample: the counterfactual reaches its target with pixels kept in [0, 1],
// and 200 explain requests, every method in turn, leave memory and the kept sessions as they were.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { counterfactual } from '../../../src/engine/explain/counterfactual';
import { explainImage } from '../../../src/engine/jobs/explain';
import { resolveExplainOptions } from '../../../src/engine/explain/options';
import { explainers } from '../../../src/engine/explain/methods';
import { openExplainSessions } from '../../../src/engine/explain/onDevice';
import { clusterDonors, describeImage, loadImage, locateImage, nearestOtherCluster, openRun } from '../../../src/engine/jobs/explainRun';
import { silentContext } from '../../../src/engine/jobContext';
import { train } from '../../../src/engine/jobs/train';
import { explainMethods, type ExplainOptions } from '../../../src/protocol/options';
import { settledBytes } from '../../memory';
import { tempDir } from '../../tempDir';

// One small image makes hundreds of tiny kernels, and on a busy 2-core machine a thread pool's hand-offs cost more
// than the work (measured when TensorFlow.js's wasm threads ran them: this file 58 s with 2 threads, 13 s with 1),
// so these tests run single-threaded.
process.env.CLUSTER_LENS_THREADS ??= '1';
const sample = path.resolve(__dirname, '../../../sample/fashion-mnist');
const classes = ['1-trouser', '2-pullover', '7-sneaker', '8-bag'];
let runDir: string;
let images: string[];

before(async () => {
  // 20 images of each of 4 classes, trained for 8 steps at the sample's native 28 px.
  const imagesDir = tempDir('cl-explain-images-');
  images = [];
  for (const label of classes) {
    mkdirSync(path.join(imagesDir, label));
    for (const file of readdirSync(path.join(sample, label)).sort().slice(0, 20)) {
      copyFileSync(path.join(sample, label, file), path.join(imagesDir, label, file));
      images.push(`${label}/${file}`);
    }
  }
  runDir = path.join(tempDir('cl-explain-run-'), 'run');
  await train(
    { imagesDir, runDir, options: { imageSizePx: 28, width: 4, prototypes: 6, batchSize: 40, epochs: 4, minutes: 0, localCrops: 1, freezePrototypesSteps: 3, seed: 2 } },
    silentContext(),
  );
});

test('counterfactual: moves sample images into the nearest other cluster and into a far one, pixels in [0, 1]', async () => {
  const run = await openRun(runDir, silentContext());
  const options = resolveExplainOptions();
  for (const image of [images[0], images[30], images[70]]) {
    const x = await loadImage(run, locateImage(run, image).absolute);
    const summary = await describeImage(run.net, x);
    // The far target: the least probable of the clusters the run's images use.
    const used = [...new Set(run.index.assignments)].filter((cluster) => cluster !== summary.cluster);
    const leastLikely = used.reduce((best, cluster) => (summary.probabilities[cluster] < summary.probabilities[best] ? cluster : best), used[0]);
    for (const target of [nearestOtherCluster(run, summary.probabilities, summary.cluster), leastLikely]) {
      assert.notEqual(target, summary.cluster);
      const outcome = await counterfactual(run.net.graphs, x.pixels, x.sizePx, run.net.temperature, target, options);
      assert.equal(outcome.valid, true, `${image}: cluster ${summary.cluster} → ${target} not reached in ${outcome.steps} steps (p = ${outcome.probabilities[target]})`);
      assert.equal(outcome.converged, true, 'stopped early once the target held with the margin');
      assert.ok(outcome.steps >= 1 && outcome.steps <= 300);
      const others = Array.from(outcome.probabilities).filter((_, k) => k !== target);
      assert.ok(outcome.probabilities[target] - Math.max(...others) >= options.counterfactualMargin - 1e-6, 'the target holds with the margin');
      assert.ok(outcome.pixels.every((value) => value >= 0 && value <= 1), 'pixels stay in [0, 1]');
      assert.ok(outcome.l1Distance > 0 && outcome.l2Distance > 0 && outcome.l2Distance <= outcome.l1Distance);
      assert.ok(Math.abs(outcome.meanAbsoluteChange - outcome.l1Distance / outcome.pixels.length) < 1e-9);
      assert.ok(outcome.changedPixelShare > 0 && outcome.changedPixelShare <= 1);
      assert.ok(outcome.maxAbsoluteChange <= 1);
    }
  }
});

test('counterfactual: the explain request reports validity, edit size and the new assignment; an impossible margin runs out of steps honestly', async () => {
  const result = await explainImage({ runDir, image: images[10], method: 'counterfactual', inlinePngs: true }, silentContext());
  const summary = result.counterfactual!;
  assert.equal(summary.kind, 'region');
  assert.ok(summary.regions!.length >= 1 && summary.donors!.length >= 1);
  for (const donor of summary.donors!) {
    assert.equal(donor.cluster, summary.targetCluster, 'donors come from the target cluster');
    assert.ok(Buffer.from(donor.png!, 'base64').subarray(1, 4).toString() === 'PNG');
  }
  assert.ok(summary.regions!.every((region) => region.donor >= 0 && region.donor < summary.donors!.length));
  assert.equal(result.target.kind, 'prototype');
  assert.notEqual(summary.targetCluster, result.cluster, 'the default target is another cluster');
  assert.equal(summary.valid, true);
  assert.equal(summary.newCluster, summary.targetCluster);
  assert.equal(summary.topPrototypes[0].prototype, summary.targetCluster);
  assert.ok(summary.targetProbability > summary.originalTargetProbability);
  for (const name of ['original', 'counterfactual', 'diff', 'overlay'] as const) assert.ok(Buffer.from(result.pngs![name]!, 'base64').subarray(1, 4).toString() === 'PNG', `${name} is a PNG`);
  assert.equal(Math.max(...result.heatmap.values), 1, 'the diff map is scaled to its largest change');

  const stuck = await explainImage({ runDir, image: images[10], method: 'counterfactual-pixel', options: { counterfactualSteps: 3, counterfactualMargin: 1 } }, silentContext());
  assert.equal(stuck.counterfactual!.steps, 3);
  assert.equal(stuck.counterfactual!.converged, false);
});

test('explain: 200 requests over every method and target leave memory and the kept sessions as they were', async () => {
  // Few perturbations per call: this measures memory, it does not judge maps.
  const small: Partial<ExplainOptions> = {
    counterfactualSteps: 3,
    occlusionPatchPx: 14,
    occlusionStridePx: 14,
    pairwiseErasures: 4,
    smoothGradSamples: 2,
    averagedTransformViews: 1,
    averagedTransformSteps: 2,
    pixelInvarianceViews: 4,
  };
  // (Attention rollout needs a transformer backbone; importedExplain.test.ts runs it on imported ViTs.)
  const requests = explainMethods.filter((method) => method !== 'attention-rollout').flatMap((method) => {
    const twoImage = ['context-agnostic-occlusion', 'pairwise-occlusion', 'interaction-cam-mean', 'interaction-cam-max'].includes(method);
    const targets = method.startsWith('counterfactual') ? [undefined, { kind: 'prototype' as const, prototype: 0 }] : twoImage ? [undefined, { kind: 'augmented' as const }] : [{ kind: 'assigned' as const }, { kind: 'image' as const, image: images[50] }];
    return targets.map((target) => ({ method, target }));
  });
  const explainAll = async (calls: number) => {
    for (let call = 0; call < calls; call++) {
      const { method, target } = requests[call % requests.length];
      const result = await explainImage({ runDir, image: images[call % images.length], method, target, options: small, inlinePngs: call % 10 === 0 }, silentContext());
      assert.equal(result.heatmap.values.length, 28 * 28);
    }
  };
  // Warm up: every request once loads the checkpoint and the index and opens each graph's session, which stay on purpose.
  await explainAll(requests.length);
  const sessions = openExplainSessions();
  const baseline = settledBytes();
  await explainAll(200);
  assert.equal(openExplainSessions(), sessions, 'no session opened beyond those of the first pass');
  const grownMb = (settledBytes() - baseline) / 2 ** 20;
  assert.ok(grownMb < 8, `memory grew by ${grownMb.toFixed(1)} MB over 200 requests`);
});

test('region counterfactual on the sample run: valid, a small edit, pixels in range, and 50 calls leave memory flat', async () => {
  // Warm up (the checkpoint, the index and the forward graph's session stay cached on purpose).
  await explainImage({ runDir, image: images[0], method: 'counterfactual' }, silentContext());
  const baseline = settledBytes();
  let valid = 0;
  const shares: number[] = [];
  for (let call = 0; call < 50; call++) {
    const image = images[(call * 7) % images.length];
    const result = await explainImage({ runDir, image, method: 'counterfactual', outDir: call === 0 ? tempDir('cl-region-out-') : undefined }, silentContext());
    const summary = result.counterfactual!;
    if (summary.valid) valid++;
    shares.push(summary.changedPixelShare);
    // Each kept region is a cell of the grid, inside the image.
    for (const region of summary.regions!) assert.ok(region.xPx >= 0 && region.yPx >= 0 && region.xPx + region.widthPx <= 28 && region.yPx + region.heightPx <= 28);
    if (call === 0) assert.ok(result.files!.counterfactual && summary.donors!.every((donor) => donor.file?.endsWith('.png')));
  }
  assert.ok(settledBytes() - baseline < 8 * 2 ** 20, 'memory stays flat');
  shares.sort((a, b) => a - b);
  assert.ok(valid >= 48, `${valid}/50 valid`);
  assert.ok(shares[25] <= 0.15, `median changed share ${shares[25]}`);
});

test('mask counterfactual on the sample run: valid, a small edit, whole cells of one donor, memory flat', async () => {
  await explainImage({ runDir, image: images[1], method: 'counterfactual-mask' }, silentContext());
  const baseline = settledBytes();
  let valid = 0;
  const shares: number[] = [];
  for (let call = 0; call < 10; call++) {
    const result = await explainImage({ runDir, image: images[(call * 11 + 5) % images.length], method: 'counterfactual-mask' }, silentContext());
    const summary = result.counterfactual!;
    assert.equal(summary.kind, 'mask');
    if (summary.valid) valid++;
    shares.push(summary.changedPixelShare);
    assert.ok(summary.regions!.length >= 1 && summary.donors!.length === 1, 'one donor blended in, through whole cells');
  }
  assert.ok(settledBytes() - baseline < 8 * 2 ** 20, 'memory stays flat');
  shares.sort((a, b) => a - b);
  assert.ok(valid >= 9, `${valid}/10 valid`);
  assert.ok(shares[5] <= 0.2, `median changed share ${shares[5]}`);
});

test('region counterfactual: every edited pixel is the image\'s own or a donor\'s, all in [0, 1]', async () => {
  const run = await openRun(runDir, silentContext());
  const x = await loadImage(run, locateImage(run, images[45]).absolute);
  const summary = await describeImage(run.net, x);
  const target = nearestOtherCluster(run, summary.probabilities, summary.cluster);
  const explanation = await explainers.counterfactual.explain({
    net: run.net, image: x, target: { kind: 'prototype', prototype: target }, options: resolveExplainOptions(), seed: 0,
    donors: (cluster, count) => clusterDonors(run, summary.features, cluster, count, locateImage(run, images[45]).position),
  });
  const outcome = explanation.counterfactual!;
  const original = x.pixels;
  assert.ok(outcome.pixels.every((value) => value >= 0 && value <= 1));
  const inside = (pixel: number) => outcome.regions!.find((region) => { const px = pixel % 28; const py = Math.floor(pixel / 28); return px >= region.xPx && px < region.xPx + region.widthPx && py >= region.yPx && py < region.yPx + region.heightPx; });
  for (let pixel = 0; pixel < 28 * 28; pixel++) {
    const region = inside(pixel);
    assert.equal(outcome.pixels[pixel], region ? outcome.donors![region.donor].pixels[pixel] : original[pixel]);
  }
});
