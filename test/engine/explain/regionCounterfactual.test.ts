// Region and mask counterfactuals on hand-built networks whose cluster depends on known cells of the image:
// the search must swap exactly those cells, from the donor that has them, and prune what is not needed.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type { Donor, ExplainableModel } from '../../../src/engine/explain/explainer';
import { explainers } from '../../../src/engine/explain/methods';
import { resolveExplainOptions } from '../../../src/engine/explain/options';
import { gridCells } from '../../../src/engine/explain/regionSearch';
import { initBackend } from '../../../src/engine/runtime/tfjs/backend';

const sizePx = 28;
// The 7 × 7 grid's cells are 4 px: cell (row, column) starts at (4·column, 4·row).
const cellAt = (row: number, column: number) => ({ xPx: 4 * column, yPx: 4 * row, widthPx: 4, heightPx: 4 });
const options = resolveExplainOptions({ counterfactualGridCells: 7, batchSize: 64 });

before(async () => {
  await initBackend('wasm');
});

function cellMask(row: number, column: number): tf.Tensor4D {
  const values = new Float32Array(sizePx * sizePx);
  for (let y = 4 * row; y < 4 * row + 4; y++) values.fill(1 / 16, y * sizePx + 4 * column, y * sizePx + 4 * column + 4);
  return tf.tensor4d(values, [1, sizePx, sizePx, 1]);
}

/**
 * Two clusters: cluster 0 scores 0.5 always; cluster 1 scores `score(means)` of the mean brightness of the given
 * cells. The feature map is the image itself, so nothing but those cells can move an image into cluster 1.
 */
function cellNetwork(cells: [number, number][], score: (means: tf.Tensor1D[]) => tf.Tensor1D): ExplainableModel & { dispose(): void } {
  const masks = cells.map(([row, column]) => cellMask(row, column));
  return {
    prototypes: 2,
    temperature: 0.1,
    featureMap: (images) => tf.clone(images),
    outputs: (map) =>
      tf.tidy(() => {
        const means = masks.map((mask) => tf.sum(tf.mul(map, mask), [1, 2, 3]) as tf.Tensor1D);
        const clusterOne = score(means);
        return { features: tf.mean(map, [1, 2]) as tf.Tensor2D, scores: tf.stack([tf.fill(clusterOne.shape, 0.5), clusterOne], 1) as tf.Tensor2D };
      }),
    dispose: () => tf.dispose(masks),
  };
}

/** A dim image with a little texture everywhere (0.1–0.3), [1, S, S, 1]. */
function dimImage(): Float32Array {
  return Float32Array.from({ length: sizePx * sizePx }, (_, i) => 0.1 + 0.2 * (((i * 7919) % 13) / 12));
}

function donor(imageIndex: number, pixels: Float32Array): Donor {
  return { imageIndex, path: `donor-${imageIndex}.png`, similarity: 1 - imageIndex / 10, cluster: 1, pixels };
}

async function explain(method: 'counterfactual' | 'counterfactual-mask', net: ExplainableModel, donors: Donor[], image = dimImage()) {
  const x = tf.tensor4d(image, [1, sizePx, sizePx, 1]);
  try {
    return await explainers[method].explain({ net, image: x, target: { kind: 'prototype', prototype: 1 }, options, seed: 0, donors: async (_cluster, count) => donors.slice(0, count) });
  } finally {
    x.dispose();
  }
}

test('region counterfactual: a cluster that reads one cell gets exactly that cell, from the donor that is bright there', async () => {
  const net = cellNetwork([[2, 3]], ([mean]) => mean);
  // Donor 0 is bright everywhere but in that cell; donor 1 is bright everywhere.
  const darkThere = new Float32Array(sizePx * sizePx).fill(1);
  for (let y = 8; y < 12; y++) darkThere.fill(0, y * sizePx + 12, y * sizePx + 16);
  const bright = new Float32Array(sizePx * sizePx).fill(1);
  try {
    const explanation = await explain('counterfactual', net, [donor(0, darkThere), donor(1, bright)]);
    const outcome = explanation.counterfactual!;
    assert.equal(outcome.kind, 'region');
    assert.equal(outcome.valid, true);
    assert.deepEqual(outcome.regions, [{ donor: 0, ...cellAt(2, 3) }]);
    assert.deepEqual(outcome.donors!.map((d) => d.path), ['donor-1.png'], 'only the donor used is reported');
    assert.equal(outcome.changedPixelShare, 16 / (sizePx * sizePx));
    // Nothing outside the cell moved.
    const original = dimImage();
    for (let pixel = 0; pixel < sizePx * sizePx; pixel++) {
      const x = pixel % sizePx;
      const y = Math.floor(pixel / sizePx);
      const inCell = x >= 12 && x < 16 && y >= 8 && y < 12;
      assert.equal(outcome.pixels[pixel], inCell ? 1 : original[pixel]);
    }
    assert.ok(outcome.probabilities[1] > 0.5);
  } finally {
    net.dispose();
  }
});

test('region counterfactual: a cell that helped on the way but is not needed at the end is pruned', async () => {
  // Cluster 1 scores 0.4·A + 0.05·B + 0.55·B·C against 0.5: greedy takes A first (it helps most alone), then B,
  // then C, and A is then no longer needed (0.6 > 0.5).
  const net = cellNetwork([[1, 1], [4, 2], [4, 5]], ([a, b, c]) => tf.addN([tf.mul(a, 0.4), tf.mul(b, 0.05), tf.mul(tf.mul(b, c), 0.55)]) as tf.Tensor1D);
  try {
    // A black image, so that B or C alone adds nothing.
    const outcome = (await explain('counterfactual', net, [donor(0, new Float32Array(sizePx * sizePx).fill(1))], new Float32Array(sizePx * sizePx))).counterfactual!;
    assert.equal(outcome.valid, true);
    assert.equal(outcome.steps, 3, 'three greedy rounds');
    assert.deepEqual(outcome.regions, [{ donor: 0, ...cellAt(4, 2) }, { donor: 0, ...cellAt(4, 5) }]);
  } finally {
    net.dispose();
  }
});

test('region counterfactual: a cluster no donor can reach is reported invalid, not faked', async () => {
  const net = cellNetwork([[2, 3]], ([mean]) => mean);
  try {
    // The donor is as dim as the image in that cell: no swap can help.
    const outcome = (await explain('counterfactual', net, [donor(0, new Float32Array(sizePx * sizePx).fill(0.2))])).counterfactual!;
    assert.equal(outcome.valid, false);
    assert.equal(outcome.converged, false);
    assert.ok(outcome.probabilities[0] > outcome.probabilities[1]);
  } finally {
    net.dispose();
  }
});

test('mask counterfactual: the mask settles on the cell the cluster reads, at a small area', async () => {
  const net = cellNetwork([[2, 3]], ([mean]) => mean);
  try {
    const outcome = (await explain('counterfactual-mask', net, [donor(0, new Float32Array(sizePx * sizePx).fill(1))])).counterfactual!;
    assert.equal(outcome.kind, 'mask');
    assert.equal(outcome.valid, true);
    assert.ok(outcome.regions!.some((region) => region.xPx === 12 && region.yPx === 8), `the cell (2, 3) is among ${JSON.stringify(outcome.regions)}`);
    // The first check that finds a valid cut stops the search: the smallest areas (2 or 4 of 49 cells) by then.
    assert.ok(outcome.regions!.length <= 4, `${outcome.regions!.length} cells`);
  } finally {
    net.dispose();
  }
});

test('region and mask counterfactuals: a cancelled search stops with CANCELLED after the round under way', async () => {
  // Cluster 1 needs three cells here, so the search is still running when it looks at the signal.
  const net = cellNetwork([[1, 1], [4, 2], [4, 5]], ([a, b, c]) => tf.addN([tf.mul(a, 0.4), tf.mul(b, 0.05), tf.mul(tf.mul(b, c), 0.55)]) as tf.Tensor1D);
  const x = tf.tensor4d(new Float32Array(sizePx * sizePx), [1, sizePx, sizePx, 1]);
  try {
    for (const method of ['counterfactual', 'counterfactual-mask'] as const) {
      const controller = new AbortController();
      const rounds: number[] = [];
      const search = explainers[method].explain({
        net, image: x, target: { kind: 'prototype', prototype: 1 }, options, seed: 0, signal: controller.signal,
        donors: async () => [donor(0, new Float32Array(sizePx * sizePx).fill(1))],
        progress: (fraction) => {
          rounds.push(fraction);
          controller.abort();
        },
      });
      await assert.rejects(search, (error: { code?: string }) => error.code === 'CANCELLED');
      assert.equal(rounds.length, 1, `${method}: one progress report, then it stopped`);
    }
  } finally {
    x.dispose();
    net.dispose();
  }
});

test('grid cells cover the image exactly once, also when the side is not a multiple of the grid', () => {
  for (const [size, cells] of [[28, 7], [30, 7], [5, 7], [96, 12]]) {
    const covered = new Uint8Array(size * size);
    for (const cell of gridCells(size, cells)) for (let y = cell.yPx; y < cell.yPx + cell.heightPx; y++) for (let x = cell.xPx; x < cell.xPx + cell.widthPx; x++) covered[y * size + x]++;
    assert.ok(covered.every((count) => count === 1), `${size} px, ${cells} cells`);
  }
});
