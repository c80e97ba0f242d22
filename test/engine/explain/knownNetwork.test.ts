// Explanations of hand-built networks whose answer is known: a network that only sees the left half of the
// image must put all of its heat there, and a prototype that reads only the top half must light the top.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { ExplainableModel, Pixels, Target } from '../../../src/engine/explain/explainer';
import { explainers } from '../../../src/engine/explain/methods';
import { closeExplainSessions } from '../../../src/engine/explain/onDevice';
import { resolveExplainOptions } from '../../../src/engine/explain/options';
import type { DifferentiableGraph } from '../../../src/engine/runtime/autodiff';
import { createRandom } from '../../../src/engine/util/random';
import type { ExplainMethod } from '../../../src/protocol/options';
import { countRuns, handBuiltNet, masked } from './handBuilt';

const sizePx = 16;
const options = resolveExplainOptions({ occlusionPatchPx: 4, occlusionStridePx: 1, smoothGradSamples: 8, pairwiseErasures: 128, pixelInvarianceViews: 128, batchSize: 32 });

after(closeExplainSessions);

/** 1 on the columns (or rows) below `half`, S·S values. */
function halfMask(axis: 'left' | 'top'): Float32Array {
  return Float32Array.from({ length: sizePx * sizePx }, (_, i) => ((axis === 'left' ? i % sizePx : Math.floor(i / sizePx)) < sizePx / 2 ? 1 : 0));
}

const plane = [1, 1, sizePx, sizePx];
/** A 3 × 3 box filter, stride 2, into `outputs` channels, each weighted by `weights`. */
function boxFilter(graph: DifferentiableGraph, weights: number[]): string {
  return graph.floats(Array.from({ length: 9 * weights.length }, (_, i) => weights[i % weights.length] / 9), [3, 3, 1, weights.length]);
}
const identity2 = (graph: DifferentiableGraph) => graph.floats([1, 0, 0, 1], [2, 2]);

/**
 * Feature map [N, 2, 8, 8] = relu(3×3 box filter, stride 2) of x ⊙ left and (1 − x) ⊙ left: nothing right of
 * the middle reaches it. Two channels so that the cosine of two images depends on their pixels.
 */
function leftHalfNetwork(): ExplainableModel {
  const left = halfMask('left');
  return handBuiltNet(
    (graph, images, watch) => {
      // box(x ⊙ left) in both channels, then [1, −1]·that + [0, box(left)]: the second is box((1 − x) ⊙ left).
      const bright = graph.conv2d(masked(graph, images, left, plane), boxFilter(graph, [1, 1]), 2);
      const boxLeft = graph.conv2d(graph.floats(left, plane), boxFilter(graph, [0, 1]), 2);
      const layer = watch(graph.relu(graph.add(graph.scaleShift(bright, graph.floats([1, -1], [1, 2, 1, 1]), graph.scalar(0)), boxLeft)));
      const features = graph.spatialMean(layer);
      return { layer, features, scores: graph.dense(features, graph.floats([1, 0.2, 0.2, 1], [2, 2]), graph.floats([0, 0], [2])) };
    },
    { channels: 1, prototypes: 2 },
  );
}

function columnHeat(map: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let y = 0; y < sizePx; y++) for (let x = from; x < to; x++) sum += map[y * sizePx + x];
  return sum;
}

function image(seed: number): Pixels {
  const random = createRandom(seed);
  return { pixels: Float32Array.from({ length: sizePx * sizePx }, () => random.uniform(0.1, 0.9)), sizePx, channels: 1 };
}

// Gradients, CAMs and sliding occlusion cannot see past the network's blind half (up to the blur of one
// feature pixel, or one patch, across the middle).
const exact: [ExplainMethod, number][] = [
  ['gradcam', 9],
  ['gradcam++', 9],
  ['layercam', 9],
  ['interaction-cam-mean', 9],
  ['interaction-cam-max', 9],
  ['input-x-gradient', 8],
  ['smoothgrad', 8],
  ['averaged-transforms', 8],
  ['conditional-occlusion', 11],
];

test('known network: a network blind to the right half gets no heat there, from every method, on both images', async () => {
  const net = leftHalfNetwork();
  const x = image(1);
  const pair = image(2);
  try {
    for (const [method, blindFrom] of exact) {
      const explainer = explainers[method];
      const targets: Target[] = [{ kind: 'similarity', pair: pair.pixels }];
      if (explainer.targets.includes('prototype')) targets.push({ kind: 'prototype', prototype: 0 });
      for (const target of targets) {
        const explanation = await explainer.explain({ net, image: x, target, options, seed: 3 });
        const maps = target.kind === 'similarity' ? [explanation.heatmap, explanation.pairHeatmap!] : [explanation.heatmap];
        assert.equal(maps.length, target.kind === 'similarity' ? 2 : 1);
        for (const map of maps) {
          assert.equal(map.length, sizePx * sizePx);
          assert.ok(Math.max(...map) > 0.99, `${method}/${target.kind}: the map is normalised to a maximum of 1`);
          const blind = columnHeat(map, blindFrom, sizePx);
          assert.ok(blind < 1e-5, `${method}/${target.kind}: ${blind} heat in columns ${blindFrom}+`);
          assert.ok(columnHeat(map, 0, sizePx / 2) > 0.9 * columnHeat(map, 0, sizePx), `${method}/${target.kind}: most heat is on the left`);
        }
      }
    }
  } finally {
    closeExplainSessions();
  }
});

/** Features [left brightness, 0.1]: two images are most similar when their left halves are equally bright, so any erasure there lowers the similarity. */
function leftBrightnessNetwork(): ExplainableModel {
  const left = halfMask('left');
  return handBuiltNet(
    (graph, images, watch) => {
      const bright = graph.conv2d(masked(graph, images, left, plane), boxFilter(graph, [1, 0]), 2);
      const layer = watch(graph.relu(graph.add(bright, graph.floats([0, 0.1], [1, 2, 1, 1]))));
      const features = graph.spatialMean(layer);
      return { layer, features, scores: graph.dense(features, identity2(graph), graph.floats([0, 0], [2])) };
    },
    { channels: 1, prototypes: 2 },
  );
}

test('known network: perturbation and surrogate methods put more heat on the half the network sees', async () => {
  const net = leftBrightnessNetwork();
  const x = image(4);
  // The image paired with itself: the similarity is at its maximum, so any erasure on the left lowers it.
  const pair = image(4);
  try {
    // Pixel invariance on prototype 0, the left half's brightness: erasing there always lowers it.
    const runs = [
      ['pairwise-occlusion', { kind: 'similarity', pair: pair.pixels }],
      ['pixel-invariance', { kind: 'prototype', prototype: 0 }],
    ] as const;
    for (const [method, target] of runs) {
      // Enough erasures that the drops' noise on the blind half stays below the signal on the seen half.
      const explanation = await explainers[method].explain({ net, image: x, target, options: { ...options, pairwiseErasures: 1024 }, seed: 3 });
      for (const map of target.kind === 'similarity' ? [explanation.heatmap, explanation.pairHeatmap!] : [explanation.heatmap]) {
        const left = columnHeat(map, 0, sizePx / 2);
        const right = columnHeat(map, sizePx / 2, sizePx);
        assert.ok(left > 2 * right, `${method}: left ${left.toFixed(2)} vs right ${right.toFixed(2)}`);
      }
    }
  } finally {
    closeExplainSessions();
  }
});

test('known network: Grad-CAM is ReLU(Σ_c mean(∂y/∂A_c) · A_c), upsampled and normalised, and follows the chosen prototype', async () => {
  // Channel 0 reads the top half, channel 1 the bottom; prototype k reads channel k only.
  const top = halfMask('top');
  const halves = new Float32Array(2 * sizePx * sizePx);
  halves.set(top);
  halves.set(top.map((value) => 1 - value), sizePx * sizePx);
  const net = handBuiltNet(
    (graph, images, watch) => {
      const both = graph.conv2d(images, graph.floats([1, 1], [1, 1, 1, 2]), 1);
      const layer = watch(masked(graph, both, halves, [1, 2, sizePx, sizePx]));
      const features = graph.spatialMean(layer);
      return { layer, features, scores: graph.dense(features, identity2(graph), graph.floats([0, 0], [2])) };
    },
    { channels: 1, prototypes: 2 },
  );
  const x = image(7);
  try {
    const { pixels } = x;
    for (const prototype of [0, 1]) {
      const { heatmap, score } = await explainers.gradcam.explain({ net, image: x, target: { kind: 'prototype', prototype }, options, seed: 0 });
      // The gradient of a mean is uniform, so the map is the prototype's channel: the image on its half, normalised.
      const expected = Float32Array.from(pixels, (value, i) => ((Math.floor(i / sizePx) < sizePx / 2) === (prototype === 0) ? value : 0));
      const low = Math.min(...expected);
      const high = Math.max(...expected);
      heatmap.forEach((value, i) => assert.ok(Math.abs(value - (expected[i] - low) / (high - low)) < 1e-5, `prototype ${prototype}, pixel ${i}: ${value}`));
      const half = Array.from(pixels).filter((_, i) => (Math.floor(i / sizePx) < sizePx / 2) === (prototype === 0));
      assert.ok(Math.abs(score - half.reduce((sum, value) => sum + value, 0) / (sizePx * sizePx)) < 1e-5, 'the score is the prototype’s');
    }
  } finally {
    closeExplainSessions();
  }
});

test('known network: occlusion is batched, never one forward pass per patch', async () => {
  const net = leftHalfNetwork();
  const x = image(8);
  const pair = image(9);
  try {
    // 13 × 13 patch positions on each image: 338 occluded copies in all.
    const { runs: passes } = await countRuns(() => explainers['conditional-occlusion'].explain({ net, image: x, target: { kind: 'similarity', pair: pair.pixels }, options, seed: 0 }));
    assert.ok(passes <= 2 * Math.ceil(169 / options.batchSize) + 6, `${passes} forward passes for 338 occluded images`);
  } finally {
    closeExplainSessions();
  }
});

test('known network: methods that need two images refuse a cluster target, and counterfactuals a pair', () => {
  assert.deepEqual(explainers['interaction-cam-mean'].targets, ['similarity']);
  assert.deepEqual(explainers['context-agnostic-occlusion'].targets, ['similarity']);
  assert.deepEqual(explainers['pairwise-occlusion'].targets, ['similarity']);
  assert.deepEqual(explainers.counterfactual.targets, ['prototype']);
});
