// torchvision and DINO-style exports (scripts/onnx/make-fixtures.py) as frozen backbones, end to end: train the head
// on a grey folder (fed as three channels, ImageNet-normalised by default), then every explanation method through
// the onnxruntime graphs built from each ONNX graph (checked against onnxruntime's session on the file itself),
// a clear refusal where an operator has no gradient rule; and the CLI on a ViT.
import assert from 'node:assert/strict';
import { explainMethods } from '../../../src/protocol/options';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { promisify } from 'node:util';
import { explainImage } from '../../../src/engine/jobs/explain';
import { evaluateCounterfactuals } from '../../../src/engine/jobs/evaluateCounterfactuals';
import { forgetRun } from '../../../src/engine/index/runQueries';
import { readIndex } from '../../../src/engine/index/indexer';
import { loadImage, locateImage, openRun } from '../../../src/engine/jobs/explainRun';
import { scorerFor } from '../../../src/engine/explain/scorer';
import { contextAgnosticOcclusion } from '../../../src/engine/explain/contextAgnosticOcclusion';
import { patchMasks } from '../../../src/engine/explain/views';
import { resolveExplainOptions } from '../../../src/engine/explain/options';
import { silentContext, type JobContext } from '../../../src/engine/jobContext';
import { loadCheckpoint } from '../../../src/engine/model/checkpoint';
import { disposeModel } from '../../../src/engine/model/model';
import { imagenetNormalization } from '../../../src/engine/onnx/backboneInput';
import { bankViews } from '../../../src/engine/frozen/frozenRun';
import { trainFrozenBackbone } from '../../../src/engine/jobs/trainFrozen';
import { OrtBackbone } from '../../../src/engine/frozen/ortBackbone';
import { frozenBackbonePath } from '../../../src/engine/frozen/backboneFile';
import type { TrainOptions } from '../../../src/protocol/options';
import type { LogLevel } from '../../../src/protocol/engine';
import { assertClose, fixtures } from '../onnx/helpers';
import { tempDir } from '../../tempDir';

process.env.CLUSTER_LENS_THREADS ??= '1';
const root = path.resolve(__dirname, '../../..');
const options: Partial<TrainOptions> = { epochs: 15, minutes: 0, batchSize: 4, learningRate: 1e-2, finalLearningRate: 1e-3, prototypes: 2, projectionHiddenDim: 16, projectionDim: 8, localCrops: 1, freezePrototypesSteps: 0, device: 'cpu' };
const explainOptions = { counterfactualSteps: 20, occlusionPatchPx: 8, occlusionStridePx: 8 };
let imagesDir: string;
let scratch: string;

before(async () => {
  scratch = tempDir('cl-imported-');
  // Fashion-MNIST's grey 28 px images: two classes, six images each; the backbones take 32 px RGB.
  imagesDir = path.join(scratch, 'images');
  for (const label of ['1-trouser', '7-sneaker']) {
    const from = path.join(root, 'sample', 'fashion-mnist', label);
    mkdirSync(path.join(imagesDir, label), { recursive: true });
    for (const file of readdirSync(from).sort().slice(0, 6)) copyFileSync(path.join(from, file), path.join(imagesDir, label, file));
  }
});

function recording(): JobContext & { lines: [LogLevel, string][] } {
  const lines: [LogLevel, string][] = [];
  return { ...silentContext(), log: (level, message) => lines.push([level, message]), lines };
}

/** A map as an explanation draws it: one value a pixel, rescaled to [0, 1] so that it reaches both ends (a flat map is all 0). */
function assertRealMap(values: ArrayLike<number>, sizePx: number, what: string): void {
  assert.equal(values.length, sizePx * sizePx, `${what}: one value a pixel`);
  const all = Array.from(values);
  assert.ok(all.every((value) => value >= 0 && value <= 1), `${what}: values in [0, 1]`);
  assert.ok(Math.min(...all) < 1e-3 && Math.max(...all) > 1 - 1e-3, `${what}: normalised and not flat (${Math.min(...all)} … ${Math.max(...all)})`);
}

/** cos(a, b) in float64. */
function cosine64(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let [dot, aa, bb] = [0, 0, 0];
  for (let i = 0; i < a.length; i++) [dot, aa, bb] = [dot + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
  return dot / Math.sqrt(aa * bb);
}

// The sizes the runs see: the model's own where it fixes one, else the run's setting (96 px: a 3 × 3 last map).
const sizes: [string, number][] = [
  ['tv_resnet18_narrow.onnx', 96],
  ['tv_mobilenet_v3_small.onnx', 96],
  ['tv_vit_tiny.onnx', 32],
  ['dino_vit_tiny.onnx', 32],
  ['tv_resnet18_narrow_opset13_inputs.onnx', 64],
  ['dino_vit_tiny_opset18.onnx', 32],
];

for (const [file, sizePx] of sizes) {
  test(`imported ${file}: trains on a grey folder, then Grad-CAM, counterfactual and occlusion explain it`, async () => {
    const runDir = path.join(scratch, file.replace('.onnx', ''));
    const context = recording();
    const trained = await trainFrozenBackbone({ imagesDir, runDir, options: { ...options, backbone: path.join(fixtures, file), imageSizePx: sizePx } }, context);
    assert.equal(trained.images, 12);
    assert.ok(!context.lines.some(([level]) => level === 'warn'), `no warnings: ${JSON.stringify(context.lines)}`);
    assert.ok(context.lines.some(([, line]) => /ImageNet's mean/.test(line)), 'the run says how it normalises');
    const checkpoint = await loadCheckpoint(trained.checkpointPath);
    assert.deepEqual([checkpoint.header.backbone?.inputMean, checkpoint.header.backbone?.inputStd, checkpoint.header.backbone?.imageSizePx, checkpoint.header.spec.channels], [imagenetNormalization.inputMean, imagenetNormalization.inputStd, sizePx, 3]);
    disposeModel(checkpoint.model);

    const image = '7-sneaker/' + readdirSync(path.join(imagesDir, '7-sneaker')).sort()[0];
    const gradcam = await explainImage({ runDir, image, method: 'gradcam', options: explainOptions }, silentContext());
    assert.equal(gradcam.heatmap.values.length, sizePx * sizePx);
    // (A map can be all zero: ReLU of a weighted sum that is negative everywhere; the graph's values are checked in importedGraph.test.ts.)
    assert.ok(gradcam.heatmap.values.every((value) => value >= 0 && value <= 1), 'a Grad-CAM map');

    // The batched forward path the region and mask counterfactuals search with runs on onnxruntime and agrees with the index.
    const run = await openRun(runDir, silentContext());
    const scorer = await scorerFor(run.net, sizePx, 3);
    const { absolute, position } = locateImage(run, image);
    const { pixels } = await loadImage(run, absolute);
    const scored = await scorer.score(pixels, 1);
    assert.equal(scored.scores.indexOf(Math.max(...scored.scores)), run.index.assignments[position], 'the scorer gives the indexed cluster');

    // The region counterfactual (the default) searches with the batched forward scorer; the pixel one with gradients.
    // It borrows from another cluster's images: a run whose index uses one cluster (here MobileNet's) is told so.
    const clusters = new Set((await readIndex(runDir)).assignments).size;
    const region = explainImage({ runDir, image, method: 'counterfactual', options: explainOptions }, silentContext());
    if (clusters > 1) {
      const { counterfactual: found } = await region;
      assert.ok(found && Number.isFinite(found.targetProbability), 'a region counterfactual');
      assert.notEqual(found.targetCluster, found.originalCluster);
    } else {
      await assert.rejects(region, (error: Error & { code?: string }) => error.code === 'BAD_REQUEST' && /no other cluster to borrow from/.test(error.message));
    }
    const counterfactual = await explainImage({ runDir, image, method: 'counterfactual-pixel', options: explainOptions }, silentContext());
    const outcome = counterfactual.counterfactual!;
    assert.notEqual(outcome.targetCluster, outcome.originalCluster);
    assert.ok(outcome.steps > 0 && outcome.l2Distance > 0, 'the image was edited');
    assert.ok(outcome.targetProbability > outcome.originalTargetProbability, `the target grew more likely (${outcome.originalTargetProbability} → ${outcome.targetProbability})`);

    // The mask counterfactual: its mask gradient from the graph's gradient at the blended images; a valid edit or
    // a clear invalid one, never an error, and the same edit again from the sessions the first call left open.
    if (clusters > 1) {
      const maskOptions = { ...explainOptions, counterfactualMaskSteps: 10 };
      const mask = await explainImage({ runDir, image, method: 'counterfactual-mask', options: maskOptions }, silentContext());
      const found = mask.counterfactual!;
      assert.equal(found.kind, 'mask');
      assert.notEqual(found.targetCluster, found.originalCluster);
      assert.ok(found.steps > 0 && Number.isFinite(found.targetProbability) && typeof found.converged === 'boolean', `a mask edit: ${JSON.stringify({ ...found, pixels: undefined })}`);
      assert.ok(found.regions!.length > 0, 'the edit blends in some cells');
      const again = (await explainImage({ runDir, image, method: 'counterfactual-mask', options: maskOptions }, silentContext())).counterfactual!;
      assert.deepEqual([again.steps, again.regions, again.targetCluster], [found.steps, found.regions, found.targetCluster], 'the same search again');
      assert.ok(Math.abs(again.targetProbability - found.targetProbability) < 1e-5, `the same edit again (${found.targetProbability}, ${again.targetProbability})`);
    }

    const occlusion = await explainImage({ runDir, image, method: 'conditional-occlusion', target: { kind: 'assigned' }, options: explainOptions }, silentContext());
    assert.ok(occlusion.heatmap.values.every(Number.isFinite));

    // Context-agnostic occlusion against an augmented view, its forward passes on onnxruntime.
    const agnostic = await explainImage({ runDir, image, method: 'context-agnostic-occlusion', target: { kind: 'augmented' }, options: explainOptions }, silentContext());
    assert.ok(agnostic.heatmap.values.every((value) => value >= 0 && value <= 1) && agnostic.pairHeatmap!.values.every(Number.isFinite));

    // Attention rollout for the transformers; a CNN is told to use Grad-CAM.
    const rollout = explainImage({ runDir, image, method: 'attention-rollout' }, silentContext());
    if (file.includes('vit')) {
      const { heatmap } = await rollout;
      assert.ok(heatmap.values.every((value) => value >= 0 && value <= 1) && heatmap.values.some((value) => value > 0.5), 'a rollout map');
    } else {
      await assert.rejects(rollout, (error: Error & { code?: string }) => error.code === 'UNSUPPORTED_MODEL' && /transformer/.test(error.message));
    }
    forgetRun(runDir);
  });
}

test("imported backbone: context-agnostic occlusion through the graphs gives the map computed from onnxruntime's session on the original ONNX file", async () => {
  const runDir = path.join(scratch, 'agnostic');
  await trainFrozenBackbone({ imagesDir, runDir, options: { ...options, epochs: 1, backbone: path.join(fixtures, 'tv_resnet18_narrow.onnx'), imageSizePx: 64 } }, silentContext());
  const run = await openRun(runDir, silentContext());
  const reference = await OrtBackbone.open(path.join(fixtures, 'tv_resnet18_narrow.onnx'), { ...imagenetNormalization, device: 'cpu' });
  try {
    const image = await loadImage(run, path.join(imagesDir, '1-trouser', readdirSync(path.join(imagesDir, '1-trouser')).sort()[0]));
    const pair = await loadImage(run, path.join(imagesDir, '7-sneaker', readdirSync(path.join(imagesDir, '7-sneaker')).sort()[0]));
    const resolved = resolveExplainOptions(explainOptions);
    const explained = await contextAgnosticOcclusion.explain({ net: run.net, image, target: { kind: 'similarity', pair: pair.pixels }, options: resolved, seed: 0 });

    // The same map in float64 from the original file's features: cos(f(x ⊙ m) − f(x ⊙ (1 − m)), f(other)) for
    // every 8 px patch m, each pixel the mean over the patches covering it, rescaled to [0, 1].
    const sizePx = 64;
    const features = (pixels: Float32Array, count: number) => reference.features(pixels, count, sizePx, sizePx, 3);
    const { masks, count } = patchMasks(sizePx, 8, 8);
    const expectedMap = async (of: Float32Array, otherFeatures: Float32Array) => {
      const perImage = of.length;
      const both = new Float32Array(2 * count * perImage);
      for (let n = 0; n < count; n++) {
        for (let p = 0; p < sizePx * sizePx; p++) {
          const m = masks[n * sizePx * sizePx + p];
          for (let c = 0; c < 3; c++) {
            both[n * perImage + p * 3 + c] = of[p * 3 + c] * m;
            both[(count + n) * perImage + p * 3 + c] = of[p * 3 + c] * (1 - m);
          }
        }
      }
      const f = await features(both, 2 * count);
      const width = otherFeatures.length;
      const scores = Array.from({ length: count }, (_, n) =>
        cosine64(
          Array.from({ length: width }, (_, i) => f[n * width + i] - f[(count + n) * width + i]),
          otherFeatures,
        ),
      );
      const map = Array.from({ length: sizePx * sizePx }, (_, p) => {
        let [sum, covered] = [0, 0];
        for (let n = 0; n < count; n++) if (masks[n * sizePx * sizePx + p] > 0) [sum, covered] = [sum + scores[n], covered + 1];
        return sum / covered;
      });
      const [low, high] = [Math.min(...map), Math.max(...map)];
      return Float32Array.from(map, (value) => (value - low) / (high - low));
    };
    const imageFeatures = await features(image.pixels, 1);
    const pairFeatures = await features(pair.pixels, 1);
    assert.ok(Math.abs(explained.score - cosine64(imageFeatures, pairFeatures)) < 1e-4, `score ${explained.score}, expected ${cosine64(imageFeatures, pairFeatures)}`);
    assertClose(explained.heatmap, await expectedMap(image.pixels, pairFeatures), 1e-3, 'heatmap');
    assertClose(explained.pairHeatmap!, await expectedMap(pair.pixels, imageFeatures), 1e-3, 'pair heatmap');
    assert.ok(Math.max(...explained.heatmap) - Math.min(...explained.heatmap) > 0.5, 'not a flat map');
  } finally {
    await reference.dispose();
    forgetRun(runDir);
  }
});

test('imported backbone: smoothgrad and the mask counterfactual run on an imported ResNet, and smoothgrad again after the mask search', async () => {
  // Reported once (when TensorFlow.js kept the weights) as INTERNAL "Cannot read properties of undefined (reading
  // 'backend')" after a mask search: a fresh run, so the first explanation builds the graphs, and the same method
  // after another.
  const runDir = path.join(scratch, 'gradient-methods');
  await trainFrozenBackbone({ imagesDir, runDir, options: { ...options, backbone: path.join(fixtures, 'tv_resnet18_narrow.onnx'), imageSizePx: 96 } }, silentContext());
  const image = '7-sneaker/' + readdirSync(path.join(imagesDir, '7-sneaker')).sort()[0];
  try {
    const smooth = await explainImage({ runDir, image, method: 'smoothgrad', options: { smoothGradSamples: 4 } }, silentContext());
    assertRealMap(smooth.heatmap.values, 96, 'a SmoothGrad map');
    const clusters = new Set((await readIndex(runDir)).assignments).size;
    assert.ok(clusters > 1, 'the mask counterfactual needs another cluster to borrow from');
    const mask = await explainImage({ runDir, image, method: 'counterfactual-mask', options: { counterfactualMaskSteps: 5 } }, silentContext());
    assert.equal(mask.counterfactual?.kind, 'mask');
    assert.ok(Number.isFinite(mask.counterfactual!.targetProbability));
    // And smoothgrad again, after the mask search: the same map.
    const again = await explainImage({ runDir, image, method: 'smoothgrad', options: { smoothGradSamples: 4 } }, silentContext());
    assertClose(Float32Array.from(again.heatmap.values), Float32Array.from(smooth.heatmap.values), 1e-3, 'SmoothGrad again');
  } finally {
    forgetRun(runDir);
  }
});

// Every method that draws a map, on backbones TensorFlow.js could not convert (MobileNet-V3's hard-swish, a ViT's attention),
// where ten of them used to refuse: each a real map, normalised to [0, 1], not flat, one value a pixel, for the
// image and its pair. A CAM's ReLU, or occlusion counting only drops, can leave a flat map for some images and
// targets (measured here: a prototype target leaves the ViT's Grad-CAM++ and LayerCAM flat, a trouser's similarity
// MobileNet's conditional occlusion), so each method explains a sneaker's similarity with its nearest neighbour.
// Every method that draws a map of the image and its pair (not the counterfactuals, the random baseline, or
// attention rollout, which needs attention layers).
const mapMethods = explainMethods.filter((method) => !method.startsWith('counterfactual') && method !== 'random' && method !== 'attention-rollout');
const mapOptions = { ...explainOptions, smoothGradSamples: 4, averagedTransformViews: 2, averagedTransformSteps: 2, pixelInvarianceViews: 16, pairwiseErasures: 16 };

for (const [file, sizePx] of [
  ['tv_mobilenet_v3_small.onnx', 64],
  ['tv_vit_tiny.onnx', 32],
] as const) {
  test(`imported ${file} (which TensorFlow.js could not convert): every gradient and perturbation method draws a real map through the graphs`, async () => {
    const runDir = path.join(scratch, `every-method-${file.replace('.onnx', '')}`);
    await trainFrozenBackbone({ imagesDir, runDir, options: { ...options, epochs: 2, backbone: path.join(fixtures, file), imageSizePx: sizePx } }, silentContext());
    const image = '7-sneaker/' + readdirSync(path.join(imagesDir, '7-sneaker')).sort()[0];
    try {
      for (const method of mapMethods) {
        const explained = await explainImage({ runDir, image, method, target: { kind: 'neighbour' }, options: mapOptions }, silentContext());
        assert.deepEqual([explained.method, explained.target.kind], [method, 'similarity']);
        assertRealMap(explained.heatmap.values, sizePx, `${file} ${method}`);
        assertRealMap(explained.pairHeatmap!.values, sizePx, `${file} ${method} (pair)`);
      }
    } finally {
      forgetRun(runDir);
    }
  });
}

test('imported backbone with an operator that has no gradient rule (Sin): the methods that need the gradient at the pixels name it; Grad-CAM (its layer after Sin) and occlusion work', async () => {
  const runDir = path.join(scratch, 'sin');
  await trainFrozenBackbone({ imagesDir, runDir, options: { ...options, epochs: 1, backbone: path.join(fixtures, 'unsupported_sin.onnx') } }, silentContext());
  const image = '1-trouser/' + readdirSync(path.join(imagesDir, '1-trouser')).sort()[0];
  const backbone = frozenBackbonePath(runDir);
  try {
    for (const method of ['input-x-gradient', 'smoothgrad', 'averaged-transforms', 'counterfactual-pixel'] as const) {
      await assert.rejects(
        explainImage({ runDir, image, method, options: mapOptions }, silentContext()),
        (error: Error & { code?: string }) => error.code === 'UNSUPPORTED_MODEL' && /operator Sin/.test(error.message) && error.message.includes("node '/Sin'") && error.message.includes(backbone),
        method,
      );
    }
    for (const method of ['gradcam', 'conditional-occlusion'] as const) {
      const explained = await explainImage({ runDir, image, method, options: { occlusionPatchPx: 2, occlusionStridePx: 2 } }, silentContext());
      assertRealMap(explained.heatmap.values, 8, method);
    }
  } finally {
    forgetRun(runDir);
  }
});

test('imported backbone: evaluate-counterfactuals on a ViT (each image described and its Grad-CAM curves scored on onnxruntime)', async () => {
  const runDir = path.join(scratch, 'evaluate-vit');
  await trainFrozenBackbone({ imagesDir, runDir, options: { ...options, backbone: path.join(fixtures, 'tv_vit_tiny.onnx'), imageSizePx: 32 } }, silentContext());
  try {
    assert.ok(new Set((await readIndex(runDir)).assignments).size > 1, 'the counterfactuals need another cluster to borrow from');
    const result = await evaluateCounterfactuals({ runDir, images: 2, seed: 0, options: { ...explainOptions, counterfactualMaskSteps: 5 } }, silentContext());
    assert.equal(result.images, 2);
    assert.deepEqual(
      result.rows.map((row) => row.method),
      ['counterfactual', 'counterfactual-mask', 'counterfactual-pixel'],
    );
    for (const row of result.rows) {
      assert.ok(row.validity >= 0 && row.validity <= 1, `${row.method}: a validity`);
      assert.ok([row.medianChangedPixelShare, row.medianL1Distance, row.medianDurationMs].every(Number.isFinite), `${row.method}: figures ${JSON.stringify(row)}`);
    }
    assert.deepEqual(result.gradCam.map((row) => row.removal), ['black', 'road']);
    for (const row of result.gradCam) {
      const areas = [row.gradCamDeletion, row.randomDeletion, row.gradCamInsertion, row.randomInsertion];
      assert.ok(areas.every((area) => Number.isFinite(area) && area >= 0 && area <= 1), `${row.removal}: areas ${JSON.stringify(row)}`);
      assert.ok([row.deletionBelowRandom, row.insertionAboveRandom].every((share) => share >= 0 && share <= 1));
    }
  } finally {
    forgetRun(runDir);
  }
});

test('imported backbone: backboneNormalization none feeds [0, 1] pixels, and the run records it', async () => {
  const runDir = path.join(scratch, 'unnormalised');
  const context = recording();
  const trained = await trainFrozenBackbone({ imagesDir, runDir, options: { ...options, backbone: path.join(fixtures, 'tv_vit_tiny.onnx'), backboneNormalization: 'none', imageSizePx: 48 } }, context);
  const checkpoint = await loadCheckpoint(trained.checkpointPath);
  assert.deepEqual([checkpoint.header.backbone?.inputMean, checkpoint.header.backbone?.inputStd], [[0, 0, 0], [1, 1, 1]]);
  // A fixed-size export is resized to, not refused.
  assert.equal(checkpoint.header.backbone?.imageSizePx, 32);
  assert.ok(context.lines.some(([level, line]) => level === 'warn' && /resized to 32 px/.test(line)));
  disposeModel(checkpoint.model);
});

test('imported backbone: the bank of views follows the time budget (full, 2 + 2, then once per image and crop scale)', () => {
  const base = { epochs: 30, localCrops: 4, images: 1000 };
  // 5 img/s (a ResNet-50 at 224 px on 2 cores): 12 views take 40 min, 4 take 13 min, 2 take 6.7 min.
  assert.deepEqual(bankViews({ ...base, minutes: 0, secondsPerImage: 0.2 }).views, { global: 8, local: 4 }, 'no budget: the full bank');
  assert.deepEqual(bankViews({ ...base, minutes: 90, secondsPerImage: 0.2 }).views, { global: 8, local: 4 });
  assert.deepEqual(bankViews({ ...base, minutes: 30, secondsPerImage: 0.2 }).views, { global: 2, local: 2 });
  assert.deepEqual(bankViews({ ...base, minutes: 10, secondsPerImage: 0.2 }).views, { global: 1, local: 1 });
  assert.deepEqual(bankViews({ ...base, localCrops: 0, minutes: 10, secondsPerImage: 0.2 }).views, { global: 1, local: 0 });
  assert.deepEqual(bankViews({ ...base, epochs: 1, minutes: 0, secondsPerImage: 0.2 }).full, { global: 2, local: 4 });
});

test('imported backbone: a bank that would take over half the time budget shrinks to once per image and crop scale', async () => {
  const runDir = path.join(scratch, 'short-budget');
  const context = recording();
  // 60 µs: less than any bank of views can take, however fast the machine.
  const trained = await trainFrozenBackbone({ imagesDir, runDir, options: { ...options, minutes: 1e-6, backbone: path.join(fixtures, 'tv_resnet18_narrow.onnx'), imageSizePx: 96 } }, context);
  assert.ok(trained.steps >= 1);
  assert.ok(context.lines.some(([, line]) => /1 global and 1 local view\(s\) per image \(once per image and crop scale\)/.test(line)), JSON.stringify(context.lines));
});

test('cli: train on a DINO-style ViT export, then explain it with gradcam and the pixel counterfactual', async () => {
  const cli = path.join(root, 'dist', 'cli.js');
  assert.ok(existsSync(cli), 'run "npm run build" first');
  const run = promisify(execFile);
  const cluster = async (args: string[]) => {
    const { stdout } = await run(process.execPath, [cli, ...args, '--json'], { maxBuffer: 1 << 26 });
    return JSON.parse(stdout.trim().split('\n').at(-1)!);
  };
  const runDir = path.join(scratch, 'cli-run');
  const trained = await cluster(['train', imagesDir, '--out', runDir, '--backbone', path.join(fixtures, 'dino_vit_tiny.onnx'), '--epochs', '3', '--batch-size', '8', '--prototypes', '2', '--device', 'cpu']);
  assert.equal(trained.images, 12);
  const image = path.join(imagesDir, '1-trouser', readdirSync(path.join(imagesDir, '1-trouser')).sort()[0]);
  for (const method of ['gradcam', 'counterfactual-pixel']) {
    const explained = await cluster(['explain', runDir, image, '--method', method, '--out', path.join(scratch, `cli-${method}`)]);
    assert.equal(explained.method, method);
    assert.ok(Object.values(explained.files as Record<string, string>).every((png) => existsSync(png)), `${method} wrote its images`);
  }
});
