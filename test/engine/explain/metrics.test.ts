// The faithfulness metrics on tiny cases whose answers are known: a perfect map against a reversed one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Pixels } from '../../../src/engine/explain/explainer';
import { averageDropIncrease } from '../../../src/engine/explain/metrics/averageDrop';
import { consistencyTransforms, contrastiveConsistencyLoss, cropTransform, horizontalFlip, transformMap } from '../../../src/engine/explain/metrics/consistency';
import { cosine } from '../../../src/engine/explain/target';
import { areaUnderCurve, gaussianBlur, insertionDeletion, revealMasks, type PairScorer } from '../../../src/engine/explain/metrics/insertionDeletion';
import { maxSensitivity } from '../../../src/engine/explain/metrics/maxSensitivity';
import { createRandom } from '../../../src/engine/util/random';

const sizePx = 8;
// One channel: an image is S · S values, and a stack of them is rows of that many.
const pixels = sizePx * sizePx;

/** Images stacked NHWC, one channel: how many rows. */
function rows(images: Float32Array): number {
  assert.equal(images.length % pixels, 0, `a stack of ${sizePx} × ${sizePx} images, not ${images.length} values`);
  return images.length / pixels;
}

/** A single-channel S × S image. */
function image(values: Float32Array): Pixels {
  return { pixels: values, sizePx, channels: 1 };
}

const ones = () => new Float32Array(pixels).fill(1);

/** Mean brightness of the left half of each row. */
function leftMeans(images: Float32Array): Float32Array {
  return Float32Array.from({ length: rows(images) }, (_, row) => {
    let sum = 0;
    for (let i = 0; i < pixels; i++) if (i % sizePx < sizePx / 2) sum += images[row * pixels + i];
    return sum / (pixels / 2);
  });
}

// A "similarity" that only looks at the left halves: the mean of the two images' left brightness.
const score: PairScorer = async (images, pairs) => {
  const a = leftMeans(images);
  const b = leftMeans(pairs);
  return a.map((value, row) => (value + b[rows(pairs) === 1 ? 0 : row]) / 2);
};

/** 4 · mean (x − ½)² over the left half: 1 for black-and-white stripes, 0 once they are blurred to grey. */
function leftContrast(images: Float32Array): Float32Array {
  return Float32Array.from({ length: rows(images) }, (_, row) => {
    let sum = 0;
    for (let i = 0; i < pixels; i++) if (i % sizePx < sizePx / 2) sum += 4 * (images[row * pixels + i] - 0.5) ** 2;
    return sum / (pixels / 2);
  });
}

const contrastScore: PairScorer = async (images, pairs) => {
  const a = leftContrast(images);
  const b = leftContrast(pairs);
  return a.map((value, row) => (value + b[rows(pairs) === 1 ? 0 : row]) / 2);
};

const perfect = Float32Array.from({ length: sizePx * sizePx }, (_, i) => (i % sizePx < sizePx / 2 ? 1 - i / 1000 : 0));
const reversed = perfect.map((value) => 1 - value);

test('metrics: area under a curve, and pixels revealed in heatmap order', () => {
  assert.equal(areaUnderCurve([0, 0.5, 1]), 0.5);
  assert.equal(areaUnderCurve([0.3, 0.3, 0.3, 0.3]), 0.3);
  const masks = revealMasks(Float32Array.from([0.1, 0.9, 0.5, 0.3]), 2);
  assert.deepEqual([...masks], [0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1]);
});

test('metrics: deletion of a perfect map scores 0.25, of the reversed map 0.75; insertion from a blur of a flat image is flat', async () => {
  const flat = ones();
  const good = await insertionDeletion(score, image(flat), flat, perfect, perfect, 16);
  const bad = await insertionDeletion(score, image(flat), flat, reversed, reversed, 16);
  // Deleting the left half first empties the score over the first half of the curve: area 1/4; last: 3/4.
  assert.ok(Math.abs(good.simultaneousDeletion - 0.25) < 1e-6, `SD ${good.simultaneousDeletion}`);
  assert.ok(Math.abs(bad.simultaneousDeletion - 0.75) < 1e-6, `SD ${bad.simultaneousDeletion}`);
  // Conditional: the intact image keeps its half of the score.
  assert.ok(Math.abs(good.conditionalDeletion - (0.25 + 1) / 2) < 1e-6, `CD ${good.conditionalDeletion}`);
  assert.ok(Math.abs(bad.conditionalDeletion - (0.75 + 1) / 2) < 1e-6, `CD ${bad.conditionalDeletion}`);
  // A blur of a flat image is the image (mirrored edges), so insertion starts where it ends.
  for (const value of [good.simultaneousInsertion, bad.simultaneousInsertion, good.conditionalInsertion]) assert.ok(Math.abs(value - 1) < 1e-5, `insertion ${value}`);
});

test('metrics: insertion rewards the perfect map when the blur hides what the score looks at', async () => {
  const stripes = Float32Array.from({ length: pixels }, (_, i) => (i % 2 === 0 ? 1 : 0));
  const blurred = gaussianBlur(stripes, sizePx, 1, 2);
  assert.ok(Math.abs(blurred[27] - 0.5) < 0.1, 'the blur averages the stripes out');
  const good = await insertionDeletion(contrastScore, image(stripes), stripes, perfect, perfect, 16);
  const bad = await insertionDeletion(contrastScore, image(stripes), stripes, reversed, reversed, 16);
  // Restoring the left half first brings the contrast back over the first half of the curve.
  assert.ok(good.simultaneousInsertion > 0.6 && bad.simultaneousInsertion < 0.4, `SI ${good.simultaneousInsertion} vs ${bad.simultaneousInsertion}`);
  assert.ok(good.conditionalInsertion > bad.conditionalInsertion + 0.2, `CI ${good.conditionalInsertion} vs ${bad.conditionalInsertion}`);
});

test('metrics: masking by a perfect map drops nothing, by the reversed map everything', async () => {
  const flat = ones();
  const leftHalf = perfect.map(Math.ceil);
  const rightHalf = leftHalf.map((value) => 1 - value);
  const good = await averageDropIncrease(score, flat, flat, leftHalf, leftHalf);
  assert.deepEqual(good, { simultaneousDrop: 0, simultaneousIncrease: 0, conditionalDrop: 0, conditionalIncrease: 0 });
  const bad = await averageDropIncrease(score, flat, flat, rightHalf, rightHalf);
  assert.ok(Math.abs(bad.simultaneousDrop - 1) < 1e-6, `SAD ${bad.simultaneousDrop}`);
  assert.ok(Math.abs(bad.conditionalDrop - 0.5) < 1e-6, `CAD ${bad.conditionalDrop}`);
  assert.equal(bad.simultaneousIncrease, 0);
});

test('metrics: max-sensitivity is 0 for a map that ignores the input and about r/√3 for a map that is the input', async () => {
  const flat = ones();
  const constant = await maxSensitivity(async () => ({ heatmap: perfect, pairHeatmap: perfect }), flat, flat, { heatmap: perfect, pairHeatmap: perfect }, 3, 0.05, createRandom(0));
  assert.equal(constant, 0);
  const identity = async (noisyImage: Float32Array, noisyPair: Float32Array) => ({ heatmap: noisyImage, pairHeatmap: noisyPair });
  const reference = { heatmap: ones(), pairHeatmap: ones() };
  const sensitivity = await maxSensitivity(identity, flat, flat, reference, 5, 0.05, createRandom(0));
  // ‖ε‖ / ‖1‖ for ε uniform on ±r is about r / √3 ≈ 0.029; the max of 5 draws a little more.
  assert.ok(sensitivity > 0.02 && sensitivity < 0.05, `MS ${sensitivity}`);
});

test('metrics: CGC consistency is 1 for an equivariant map, low for one fixed to a side; the contrastive loss has its closed form', () => {
  const map = Float32Array.from({ length: sizePx * sizePx }, (_, i) => (i % sizePx) / sizePx + Math.floor(i / sizePx) / 100);
  for (const transform of [horizontalFlip, cropTransform([0.1, 0.2, 0.8, 0.9]), ...consistencyTransforms(createRandom(1))]) {
    // A map equal to the image transforms with it: h(T(x)) = T(x) = T(h(x)).
    assert.ok(Math.abs(cosine(transformMap(map, transform), transformMap(map, transform)) - 1) < 1e-6);
  }
  const leftOnly = Float32Array.from({ length: sizePx * sizePx }, (_, i) => (i % sizePx < sizePx / 2 ? 1 : 0));
  // A map stuck on the left does not follow a flip: T(h) lies on the right, h(T(x)) still on the left.
  assert.equal(cosine(transformMap(leftOnly, horizontalFlip), leftOnly), 0);
  // Two images, orthogonal maps, each query matching its key: loss = log(1 + e^(−1/τ)) with τ = 0.5.
  const top = Float32Array.from({ length: 4 }, (_, i) => (i < 2 ? 1 : 0));
  const bottom = top.map((value) => 1 - value);
  assert.ok(Math.abs(contrastiveConsistencyLoss([top, bottom], [top, bottom]) - Math.log(1 + Math.exp(-2))) < 1e-9);
  assert.ok(contrastiveConsistencyLoss([top, bottom], [bottom, top]) > 2, 'swapped keys are penalised');
  assert.equal(contrastiveConsistencyLoss([top], [top]), 0);
});
