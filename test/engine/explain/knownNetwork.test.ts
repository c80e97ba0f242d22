// Explanations of hand-built networks whose answer is known: a network that only sees the left half of the
// image must put all of its heat there, and a prototype that reads only the top half must light the top.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/engine/runtime/tfjs/backend';
import type { ExplainableModel, Target } from '../../../src/engine/explain/explainer';
import { explainers } from '../../../src/engine/explain/methods';
import { resolveExplainOptions } from '../../../src/engine/explain/options';
import type { ExplainMethod } from '../../../src/protocol/options';

const sizePx = 16;
const options = resolveExplainOptions({ occlusionPatchPx: 4, occlusionStridePx: 1, smoothGradSamples: 8, pairwiseErasures: 128, pixelInvarianceViews: 128, batchSize: 32 });

before(async () => {
  await initBackend('wasm');
});

/** 1 on the columns (or rows) below `half`, as [1, S, S, 1]. */
function halfMask(axis: 'left' | 'top'): tf.Tensor4D {
  return tf.tidy(() => {
    const values = Float32Array.from({ length: sizePx * sizePx }, (_, i) => ((axis === 'left' ? i % sizePx : Math.floor(i / sizePx)) < sizePx / 2 ? 1 : 0));
    return tf.tensor4d(values, [1, sizePx, sizePx, 1]);
  });
}

/**
 * Feature map [N, 8, 8, 2] = relu(3×3 box filter, stride 2) of x ⊙ left and (1 − x) ⊙ left: nothing right of
 * the middle reaches it. Two channels so that the cosine of two images depends on their pixels.
 */
function leftHalfNetwork(): ExplainableModel & { calls: () => number; dispose: () => void } {
  const left = halfMask('left');
  const box = tf.fill([3, 3, 1, 1], 1 / 9) as tf.Tensor4D;
  let calls = 0;
  return {
    prototypes: 2,
    temperature: 0.1,
    featureMap(images) {
      calls++;
      return tf.tidy(() => {
        const bright = tf.conv2d(tf.mul(images, left) as tf.Tensor4D, box, 2, 'same');
        const dark = tf.conv2d(tf.mul(tf.sub(1, images), left) as tf.Tensor4D, box, 2, 'same');
        return tf.relu(tf.concat([bright, dark], 3)) as tf.Tensor4D;
      });
    },
    outputs(map) {
      return tf.tidy(() => {
        const features = tf.mean(map, [1, 2]) as tf.Tensor2D;
        return { features, scores: tf.matMul(features, tf.tensor2d([[1, 0.2], [0.2, 1]])) as tf.Tensor2D };
      });
    },
    calls: () => calls,
    dispose: () => tf.dispose([left, box]),
  };
}

function columnHeat(map: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let y = 0; y < sizePx; y++) for (let x = from; x < to; x++) sum += map[y * sizePx + x];
  return sum;
}

function image(seed: number): tf.Tensor4D {
  return tf.randomUniform([1, sizePx, sizePx, 1], 0.1, 0.9, 'float32', seed) as tf.Tensor4D;
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
      const targets: Target[] = [{ kind: 'similarity', pair }];
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
    tf.dispose([x, pair]);
    net.dispose();
  }
});

/** Features [left brightness, 0.1]: two images are most similar when their left halves are equally bright, so any erasure there lowers the similarity. */
function leftBrightnessNetwork(): ExplainableModel & { dispose: () => void } {
  const left = halfMask('left');
  const box = tf.fill([3, 3, 1, 1], 1 / 9) as tf.Tensor4D;
  return {
    prototypes: 2,
    temperature: 0.1,
    featureMap: (images) =>
      tf.tidy(() => {
        const bright = tf.relu(tf.conv2d(tf.mul(images, left) as tf.Tensor4D, box, 2, 'same'));
        return tf.concat([bright, tf.fill(bright.shape, 0.1)], 3) as tf.Tensor4D;
      }),
    outputs: (map) =>
      tf.tidy(() => {
        const features = tf.mean(map, [1, 2]) as tf.Tensor2D;
        return { features, scores: tf.matMul(features, tf.tensor2d([[1, 0], [0, 1]])) as tf.Tensor2D };
      }),
    dispose: () => tf.dispose([left, box]),
  };
}

test('known network: perturbation and surrogate methods put more heat on the half the network sees', async () => {
  const net = leftBrightnessNetwork();
  const x = image(4);
  const pair = image(5);
  try {
    // Pixel invariance on prototype 0, the left half's brightness: erasing there always lowers it.
    const runs = [
      ['pairwise-occlusion', { kind: 'similarity', pair }],
      ['pixel-invariance', { kind: 'prototype', prototype: 0 }],
    ] as const;
    for (const [method, target] of runs) {
      const explanation = await explainers[method].explain({ net, image: x, target, options, seed: 3 });
      for (const map of target.kind === 'similarity' ? [explanation.heatmap, explanation.pairHeatmap!] : [explanation.heatmap]) {
        const left = columnHeat(map, 0, sizePx / 2);
        const right = columnHeat(map, sizePx / 2, sizePx);
        assert.ok(left > 2 * right, `${method}: left ${left.toFixed(2)} vs right ${right.toFixed(2)}`);
      }
    }
  } finally {
    tf.dispose([x, pair]);
    net.dispose();
  }
});

test('known network: Grad-CAM is ReLU(Σ_c mean(∂y/∂A_c) · A_c), upsampled and normalised, and follows the chosen prototype', async () => {
  // Channel 0 reads the top half, channel 1 the bottom; prototype k reads channel k only.
  const top = halfMask('top');
  const net: ExplainableModel = {
    prototypes: 2,
    temperature: 0.1,
    featureMap: (images) => tf.tidy(() => tf.concat([tf.mul(images, top), tf.mul(images, tf.sub(1, top))], 3) as tf.Tensor4D),
    outputs: (map) =>
      tf.tidy(() => {
        const features = tf.mean(map, [1, 2]) as tf.Tensor2D;
        return { features, scores: tf.matMul(features, tf.tensor2d([[1, 0], [0, 1]])) as tf.Tensor2D };
      }),
  };
  const x = image(7);
  try {
    const pixels = x.dataSync();
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
    tf.dispose([x, top]);
  }
});

test('known network: occlusion is batched, never one forward pass per patch', async () => {
  const net = leftHalfNetwork();
  const x = image(8);
  const pair = image(9);
  try {
    // 13 × 13 patch positions on each image: 338 occluded copies in all.
    const before = net.calls();
    await explainers['conditional-occlusion'].explain({ net, image: x, target: { kind: 'similarity', pair }, options, seed: 0 });
    const passes = net.calls() - before;
    assert.ok(passes <= 2 * Math.ceil(169 / options.batchSize) + 6, `${passes} forward passes for 338 occluded images`);
  } finally {
    tf.dispose([x, pair]);
    net.dispose();
  }
});

test('known network: methods that need two images refuse a cluster target, and counterfactuals a pair', () => {
  assert.deepEqual(explainers['interaction-cam-mean'].targets, ['similarity']);
  assert.deepEqual(explainers['context-agnostic-occlusion'].targets, ['similarity']);
  assert.deepEqual(explainers['pairwise-occlusion'].targets, ['similarity']);
  assert.deepEqual(explainers.counterfactual.targets, ['prototype']);
});
