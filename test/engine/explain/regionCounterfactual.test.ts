// Region and mask counterfactuals on hand-built networks whose cluster depends on known cells of the image:
// the search must swap exactly those cells, from the donor that has them, and prune what is not needed.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Donor, ExplainableModel } from '../../../src/engine/explain/explainer';
import { explainers } from '../../../src/engine/explain/methods';
import { closeExplainSessions } from '../../../src/engine/explain/onDevice';
import { resolveExplainOptions } from '../../../src/engine/explain/options';
import { gridCells, planRegionSearch, regionSearch, type RegionSearchPlan } from '../../../src/engine/explain/regionSearch';
import { scorerFor, type ClusterScorer } from '../../../src/engine/explain/scorer';
import type { DifferentiableGraph } from '../../../src/engine/runtime/autodiff';
import { columns, handBuiltNet, product, reshaped } from './handBuilt';

const sizePx = 28;
// The 7 × 7 grid's cells are 4 px: cell (row, column) starts at (4·column, 4·row).
const cellAt = (row: number, column: number) => ({ xPx: 4 * column, yPx: 4 * row, widthPx: 4, heightPx: 4 });
const options = resolveExplainOptions({ counterfactualGridCells: 7, batchSize: 64 });

after(closeExplainSessions);

/** A column [S·S, 1] with 1/16 on the cell's pixels: the cell's mean brightness as a dense layer. */
function cellColumn(row: number, column: number): Float32Array {
  const values = new Float32Array(sizePx * sizePx);
  for (let y = 4 * row; y < 4 * row + 4; y++) values.fill(1 / 16, y * sizePx + 4 * column, y * sizePx + 4 * column + 4);
  return values;
}

type CellScore = (graph: DifferentiableGraph, means: string[]) => string;
const firstMean: CellScore = (_graph, [mean]) => mean;
/** 0.4·A + 0.05·B + 0.55·B·C */
const abc: CellScore = (graph, [a, b, c]) => {
  const scaled = (x: string, factor: number) => graph.scaleShift(x, graph.scalar(factor), graph.scalar(0));
  return graph.add(graph.add(scaled(a, 0.4), scaled(b, 0.05)), scaled(product(graph, b, c), 0.55));
};

/**
 * Two clusters: cluster 0 scores 0.5 always; cluster 1 scores `score(means)` of the mean brightness of the given
 * cells. The explanation layer is the image itself, so nothing but those cells can move an image into cluster 1.
 */
function cellNetwork(cells: [number, number][], score: CellScore): ExplainableModel {
  return handBuiltNet(
    (graph, images, watch) => {
      const layer = watch(images);
      const [n] = graph.shape(layer);
      const flat = reshaped(graph, layer, [n, sizePx * sizePx]);
      const means = cells.map(([row, column]) => graph.dense(flat, graph.floats(cellColumn(row, column), [sizePx * sizePx, 1]), graph.floats([0], [1])));
      const clusterZero = graph.floats(new Float32Array(n).fill(0.5), [n, 1]);
      return { layer, scores: columns(graph, [clusterZero, score(graph, means)]) };
    },
    { channels: 1, prototypes: 2 },
  );
}

/** A dim image with a little texture everywhere (0.1–0.3), [1, S, S, 1]. */
function dimImage(): Float32Array {
  return Float32Array.from({ length: sizePx * sizePx }, (_, i) => 0.1 + 0.2 * (((i * 7919) % 13) / 12));
}

function donor(imageIndex: number, pixels: Float32Array): Donor {
  return { imageIndex, path: `donor-${imageIndex}.png`, similarity: 1 - imageIndex / 10, cluster: 1, pixels };
}

function explain(method: 'counterfactual' | 'counterfactual-mask', net: ExplainableModel, donors: Donor[], image = dimImage()) {
  return explainers[method].explain({ net, image: { pixels: image, sizePx, channels: 1 }, target: { kind: 'prototype', prototype: 1 }, options, seed: 0, donors: async (_cluster, count) => donors.slice(0, count) });
}

test('region counterfactual: a cluster that reads one cell gets exactly that cell, from the donor that is bright there', async () => {
  const net = cellNetwork([[2, 3]], firstMean);
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
    closeExplainSessions();
  }
});

test('region counterfactual: a cell that helped on the way but is not needed at the end is pruned', async () => {
  // Cluster 1 scores 0.4·A + 0.05·B + 0.55·B·C against 0.5: greedy takes A first (it helps most alone), then B,
  // then C, and A is then no longer needed (0.6 > 0.5).
  const net = cellNetwork([[1, 1], [4, 2], [4, 5]], abc);
  try {
    // A black image, so that B or C alone adds nothing.
    const outcome = (await explain('counterfactual', net, [donor(0, new Float32Array(sizePx * sizePx).fill(1))], new Float32Array(sizePx * sizePx))).counterfactual!;
    assert.equal(outcome.valid, true);
    assert.equal(outcome.steps, 3, 'three greedy rounds');
    assert.deepEqual(outcome.regions, [{ donor: 0, ...cellAt(4, 2) }, { donor: 0, ...cellAt(4, 5) }]);
  } finally {
    closeExplainSessions();
  }
});

test('region counterfactual: a cluster no donor can reach is reported invalid, not faked', async () => {
  const net = cellNetwork([[2, 3]], firstMean);
  try {
    // The donor is as dim as the image in that cell: no swap can help.
    const outcome = (await explain('counterfactual', net, [donor(0, new Float32Array(sizePx * sizePx).fill(0.2))])).counterfactual!;
    assert.equal(outcome.valid, false);
    assert.equal(outcome.converged, false);
    assert.ok(outcome.probabilities[0] > outcome.probabilities[1]);
  } finally {
    closeExplainSessions();
  }
});

test('mask counterfactual: the mask settles on the cell the cluster reads, at a small area', async () => {
  const net = cellNetwork([[2, 3]], firstMean);
  try {
    const outcome = (await explain('counterfactual-mask', net, [donor(0, new Float32Array(sizePx * sizePx).fill(1))])).counterfactual!;
    assert.equal(outcome.kind, 'mask');
    assert.equal(outcome.valid, true);
    assert.ok(outcome.regions!.some((region) => region.xPx === 12 && region.yPx === 8), `the cell (2, 3) is among ${JSON.stringify(outcome.regions)}`);
    // The first check that finds a valid cut stops the search: the smallest areas (2 or 4 of 49 cells) by then.
    assert.ok(outcome.regions!.length <= 4, `${outcome.regions!.length} cells`);
  } finally {
    closeExplainSessions();
  }
});

test('region and mask counterfactuals: a cancelled search stops with CANCELLED after the round under way', async () => {
  // Cluster 1 needs three cells here, so the search is still running when it looks at the signal.
  const net = cellNetwork([[1, 1], [4, 2], [4, 5]], abc);
  const x = { pixels: new Float32Array(sizePx * sizePx), sizePx, channels: 1 };
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
    closeExplainSessions();
  }
});

test('grid cells cover the image exactly once, also when the side is not a multiple of the grid', () => {
  for (const [size, cells] of [[28, 7], [30, 7], [5, 7], [96, 12]]) {
    const covered = new Uint8Array(size * size);
    for (const cell of gridCells(size, cells)) for (let y = cell.yPx; y < cell.yPx + cell.heightPx; y++) for (let x = cell.xPx; x < cell.xPx + cell.widthPx; x++) covered[y * size + x]++;
    assert.ok(covered.every((count) => count === 1), `${size} px, ${cells} cells`);
  }
});

/** The cell network's scorer, made to cost `msPerImage` a scored image (a stand-in for a large imported backbone). */
async function slowScorer(net: ExplainableModel, msPerImage: number): Promise<ClusterScorer & { scored: number[] }> {
  const inner = await scorerFor(net, sizePx, 1);
  const scored: number[] = [];
  return {
    ...inner,
    scored,
    async score(images, count) {
      scored.push(count);
      await new Promise((resolve) => setTimeout(resolve, msPerImage * count));
      return inner.score(images, count);
    },
    imagesComputed: undefined,
  };
}

/** Ten donors: the nearest, donor 0, alone is bright at cell (2, 3) (and at two other cells); the rest are as dim as the image. */
function tenDonors(): Float32Array[] {
  return Array.from({ length: 10 }, (_, index) => {
    const pixels = dimImage();
    if (index === 0) for (const [row, column] of [[2, 3], [0, 0], [6, 6]]) for (let y = 4 * row; y < 4 * row + 4; y++) pixels.fill(1, y * sizePx + 4 * column, y * sizePx + 4 * column + 4);
    return pixels;
  });
}

test('region search: on a slow network the budget shrinks donors, grid and candidates, and the known cell is still found', async () => {
  const net = cellNetwork([[2, 3]], firstMean);
  try {
    const settings = { gridCells: 7, maxRegions: 24, donorsAfterFirstRound: 4 };
    // Fast (no budget): the full search, 10 donors × 49 cells in round 1.
    const fast = await slowScorer(net, 0);
    const full = await regionSearch(fast, dimImage(), tenDonors(), 1, settings);
    assert.equal(full.valid, true);
    assert.deepEqual(full.regions, [{ donor: 0, ...cellAt(2, 3) }]);
    assert.equal(full.plan.reduced, false);
    assert.equal(fast.scored[1], 490);

    // 20 ms an image against a 1.5 s budget: ~75 images for the whole search, not 490 in its first round.
    const slow = await slowScorer(net, 20);
    const plans: RegionSearchPlan[] = [];
    const fitted = await regionSearch(slow, dimImage(), tenDonors(), 1, { ...settings, budgetMs: 1500 }, undefined, undefined, (plan) => plans.push(plan));
    assert.equal(plans.length, 1);
    const plan = fitted.plan;
    assert.equal(plan.reduced, true);
    assert.ok(plan.msPerImage >= 20, `${plan.msPerImage} ms an image`);
    assert.ok(plan.candidatesPerRound <= 15, `${plan.candidatesPerRound} candidates a round`);
    assert.ok(slow.scored.slice(1).every((count) => count <= plan.candidatesPerRound), `calls of ${slow.scored.join(', ')} images`);
    assert.ok(fitted.imagesScored < 60, `${fitted.imagesScored} images scored`);
    // The nearest donor on a coarser grid: its (larger) cells swapped in still reach cell (2, 3), and nothing else.
    assert.ok(plan.donors <= 2 && plan.gridCells <= 4, `${plan.gridCells} × ${plan.gridCells} grid, ${plan.donors} donors`);
    assert.equal(fitted.valid, true);
    const known = cellAt(2, 3);
    const overlaps = (region: (typeof fitted.regions)[number]) => region.xPx < known.xPx + known.widthPx && known.xPx < region.xPx + region.widthPx && region.yPx < known.yPx + known.heightPx && known.yPx < region.yPx + region.heightPx;
    assert.ok(fitted.regions.length >= 1 && fitted.regions.every((region) => region.donor === 0 && overlaps(region)), JSON.stringify(fitted.regions));
  } finally {
    closeExplainSessions();
  }
});

test('region search: --grid and --donors set by the caller stay; the budget only caps the candidates, the most changed cells first', async () => {
  const net = cellNetwork([[2, 3]], firstMean);
  try {
    const slow = await slowScorer(net, 20);
    const fitted = await regionSearch(slow, dimImage(), tenDonors(), 1, { gridCells: 7, maxRegions: 24, donorsAfterFirstRound: 4, budgetMs: 1500, fixed: { gridCells: true, donors: true } });
    assert.equal(fitted.plan.gridCells, 7);
    assert.equal(fitted.plan.donors, 10);
    assert.ok(fitted.plan.candidatesPerRound <= 15);
    // Donor 0's three bright cells change the image most, so they are among the candidates, and (2, 3) wins.
    assert.equal(fitted.valid, true);
    assert.deepEqual(fitted.regions, [{ donor: 0, ...cellAt(2, 3) }]);
    assert.ok(fitted.imagesScored < 30, `${fitted.imagesScored} images scored`);
  } finally {
    closeExplainSessions();
  }
});

test('region search plan: unchanged wherever the full search fits the budget', () => {
  const settings = { gridCells: 7, donors: 10, donorsAfterFirstRound: 4, maxRegions: 24, budgetMs: 15_000 };
  // The engine's own network at 28 px: well under a millisecond an image (a padded batch of 128 counted).
  assert.deepEqual(planRegionSearch(settings, 0.5, 60, (count) => Math.ceil(count / 128) * 128), { gridCells: 7, donors: 10, candidatesPerRound: 490, msPerImage: 0.5, budgetMs: 15_000, reduced: false });
  assert.equal(planRegionSearch({ ...settings, budgetMs: 0 }, 200, 200).reduced, false);
  // An imported ResNet-50 on the CPU, ~200 ms an image: one donor on a 3 × 3 grid.
  const resnet = planRegionSearch(settings, 200, 200);
  assert.deepEqual([resnet.gridCells, resnet.donors, resnet.candidatesPerRound, resnet.reduced], [3, 1, 9, true]);
});
