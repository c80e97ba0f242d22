// The swapped-loss emitter (swav/loss.ts) in a graph of its own on onnxruntime's CPU provider: its loss against a
// float64 reference of SwAV's swapped prediction, and its score gradients against finite differences of the loss
// with the codes held fixed (the codes are targets in SwAV).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DifferentiableGraph } from '../../../src/engine/runtime/autodiff';
import { swapLoss } from '../../../src/engine/swav/loss';
import { sinkhorn } from '../../../src/engine/swav/sinkhorn';
import { createRandom } from '../../../src/engine/util/random';
import { referenceSinkhorn } from './referenceSinkhorn';
import { feedOf, openGraph, referenceSwappedLoss, rowsOf } from './swavReference';

const settings = { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3, cropsForAssign: [0, 1] };

/**
 * The loss graph on `crops` (each [B, K]): codes from the Sinkhorn emitter, or fed as inputs `codes.<position>`
 * when `fixedCodes` is set. Returns the loss and each crop's score gradients.
 */
async function lossInGraph(crops: number[][][], options: { cropsForAssign?: number[]; fixedCodes?: number[][][] } = {}): Promise<{ loss: number; gradients: number[][][] }> {
  const cropsForAssign = options.cropsForAssign ?? settings.cropsForAssign;
  const [batch, prototypes] = [crops[0].length, crops[0][0].length];
  const graph = new DifferentiableGraph();
  const inputs = crops.map((_, view) => graph.input(`crop.${view}`, [batch, prototypes], false));
  const codesOf = options.fixedCodes
    ? (_scores: string, position: number) => graph.input(`codes.${position}`, [batch, prototypes], false)
    : (scores: string) => sinkhorn(graph, scores, undefined, { epsilon: settings.epsilon, iterations: settings.sinkhornIterations });
  const { loss, scoreGradients } = swapLoss(graph, inputs, { temperature: settings.temperature, cropsForAssign }, codesOf);
  assert.equal(scoreGradients.length, crops.length, 'a score gradient per crop');
  graph.output(loss, 'loss');
  scoreGradients.forEach((gradient, view) => graph.output(gradient, `gradient.${view}`));
  const session = await openGraph(graph, 'swapped loss');
  try {
    const feeds = Object.fromEntries([
      ...crops.map((scores, view) => [`crop.${view}`, feedOf(scores)]),
      ...(options.fixedCodes ?? []).map((codes, position) => [`codes.${position}`, feedOf(codes)]),
    ]);
    const out = await session.run(feeds, ['loss', ...crops.map((_, view) => `gradient.${view}`)]);
    assert.deepEqual(out.loss.dims, []);
    return { loss: out.loss.data[0], gradients: crops.map((_, view) => rowsOf(out[`gradient.${view}`].data, batch, prototypes)) };
  } finally {
    await session.dispose();
  }
}

function randomCrops(views: number, batch: number, prototypes: number, seed: number): number[][][] {
  const random = createRandom(seed);
  return Array.from({ length: views }, () => Array.from({ length: batch }, () => Array.from({ length: prototypes }, () => Math.fround(random.uniform(-1, 1)))));
}

const sinkhornCodes = (crops: number[][][], cropsForAssign = settings.cropsForAssign) => cropsForAssign.map((crop) => referenceSinkhorn(crops[crop], settings.epsilon, settings.sinkhornIterations));

test('swapped loss matches a hand computation (2 global + 1 local crop)', async () => {
  const crops = [
    [[0.9, 0.1, -0.2], [0.2, 0.8, 0.1], [-0.3, 0.2, 0.7], [0.5, 0.4, 0.1]],
    [[0.7, 0.3, -0.1], [0.1, 0.9, 0.0], [-0.1, 0.1, 0.8], [0.6, 0.2, 0.3]],
    [[0.3, 0.3, 0.3], [0.0, 0.5, 0.2], [0.2, -0.4, 0.6], [0.8, 0.1, 0.0]],
  ].map((crop) => crop.map((row) => row.map(Math.fround)));
  const { loss } = await lossInGraph(crops);
  const expected = referenceSwappedLoss(crops, sinkhornCodes(crops), settings.temperature, settings.cropsForAssign);
  assert.ok(Math.abs(loss - expected) < 1e-4, `loss ${loss} vs hand ${expected}`);
});

test('swapped loss matches the reference on random scores, whichever crops are assigned', async () => {
  const crops = randomCrops(4, 6, 5, 1);
  for (const cropsForAssign of [[0, 1], [3, 1]]) {
    const { loss } = await lossInGraph(crops, { cropsForAssign });
    const expected = referenceSwappedLoss(crops, sinkhornCodes(crops, cropsForAssign), settings.temperature, cropsForAssign);
    assert.ok(Math.abs(loss - expected) < 1e-4 * Math.max(1, Math.abs(expected)), `assigning ${cropsForAssign}: loss ${loss} vs ${expected}`);
  }
});

test('swapped loss: agreeing views cost less than disagreeing ones', async () => {
  const a = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]];
  const shifted = a.map((row) => [row[2], row[0], row[1]]);
  const agree = (await lossInGraph([a, a])).loss;
  const disagree = (await lossInGraph([a, shifted])).loss;
  assert.ok(agree < disagree - 1, `agree ${agree}, disagree ${disagree}`);
});

test('swapped loss: the score gradients are the loss\'s derivative with the codes held fixed (central differences)', async () => {
  const crops = randomCrops(4, 4, 5, 2);
  const codes = sinkhornCodes(crops);
  const fixed = await lossInGraph(crops, { fixedCodes: codes });
  // The loss with the codes as inputs is the loss with the Sinkhorn codes, at the same scores.
  const withSinkhorn = await lossInGraph(crops);
  assert.ok(Math.abs(fixed.loss - withSinkhorn.loss) < 1e-5, `${fixed.loss} vs ${withSinkhorn.loss}`);
  // Codes are targets: the gradients are the same whether the codes come from the scores or from outside.
  withSinkhorn.gradients.forEach((gradient, view) => gradient.forEach((row, b) => row.forEach((g, k) => assert.ok(Math.abs(g - fixed.gradients[view][b][k]) < 1e-6, `view ${view} [${b},${k}]`))));

  // Central differences of the float64 reference loss at fixed codes, entry by entry.
  const h = 1e-4;
  const lossAt = (view: number, b: number, k: number, step: number) => {
    const moved = crops.map((crop, v) => crop.map((row, r) => row.map((value, c) => (v === view && r === b && c === k ? value + step : value))));
    return referenceSwappedLoss(moved, codes, settings.temperature, settings.cropsForAssign);
  };
  let largest = 0;
  crops.forEach((crop, view) =>
    crop.forEach((row, b) =>
      row.forEach((_, k) => {
        const difference = (lossAt(view, b, k, h) - lossAt(view, b, k, -h)) / (2 * h);
        const ours = fixed.gradients[view][b][k];
        largest = Math.max(largest, Math.abs(difference));
        assert.ok(Math.abs(ours - difference) < 1e-4 + 1e-3 * Math.abs(difference), `view ${view} [${b},${k}]: graph ${ours}, central difference ${difference}`);
      }),
    ),
  );
  assert.ok(largest > 0.05, 'the gradients are not all ~0');

  // The same on the graph's own loss (float32): two entries of each view, a larger step.
  const graphStep = 1e-2;
  for (let view = 0; view < crops.length; view++) {
    for (const [b, k] of [[0, view % 5], [3, (view + 2) % 5]]) {
      const at = async (step: number) => (await lossInGraph(crops.map((crop, v) => crop.map((row, r) => row.map((value, c) => (v === view && r === b && c === k ? value + step : value)))), { fixedCodes: codes })).loss;
      const difference = ((await at(graphStep)) - (await at(-graphStep))) / (2 * graphStep);
      const ours = fixed.gradients[view][b][k];
      assert.ok(Math.abs(ours - difference) < 2e-3 + 1e-2 * Math.abs(difference), `graph loss, view ${view} [${b},${k}]: gradient ${ours}, central difference ${difference}`);
    }
  }

  // Through the Sinkhorn codes the loss also moves with the assigned crops' own scores: that part is left out.
  const assignedEntry = async (step: number) => (await lossInGraph(crops.map((crop, v) => crop.map((row, r) => row.map((value, c) => (v === 0 && r === 1 && c === 2 ? value + step : value)))))).loss;
  const total = ((await assignedEntry(graphStep)) - (await assignedEntry(-graphStep))) / (2 * graphStep);
  assert.ok(Math.abs(total - fixed.gradients[0][1][2]) > 1e-2, `the codes' share of crop 0's derivative is visible (${total} vs ${fixed.gradients[0][1][2]}), so the checks above can tell`);
});

test('swapped loss: each crop\'s score gradient is the closed form over the codes it predicts (crops 0 and 2 assigned)', async () => {
  // Crop 1 predicts both crops' codes, crops 0 and 2 each predict the other's.
  const crops = randomCrops(3, 4, 5, 3);
  const { gradients } = await lossInGraph(crops, { cropsForAssign: [0, 2] });
  const codes = sinkhornCodes(crops, [0, 2]);
  // Analytic: view v's gradient is Σ_{a ≠ v} (p_v · Σ_k q_a − q_a) / (T · B · |assigned| · (views − 1)).
  const weight = 1 / (2 * (crops.length - 1));
  crops.forEach((scores, view) => {
    scores.forEach((row, b) => {
      const p = row.map((v) => v / settings.temperature).map((v, _, all) => Math.exp(v - Math.max(...all)));
      const sum = p.reduce((a, c) => a + c, 0);
      row.forEach((_, k) => {
        let expected = 0;
        [0, 2].forEach((assigned, position) => {
          if (assigned === view) return;
          const mass = codes[position][b].reduce((a, c) => a + c, 0);
          expected += ((p[k] / sum) * mass - codes[position][b][k]) * weight / (settings.temperature * scores.length);
        });
        assert.ok(Math.abs(gradients[view][b][k] - expected) < 1e-5, `view ${view} [${b},${k}]: ${gradients[view][b][k]} vs ${expected}`);
      });
    });
  });
});

test('swapped loss: a crop whose own codes are the only ones gets a zero gradient, the others the closed form', async () => {
  const crops = randomCrops(3, 4, 5, 4);
  const { gradients } = await lossInGraph(crops, { cropsForAssign: [1] });
  const [codes] = sinkhornCodes(crops, [1]);
  gradients[1].forEach((row) => row.forEach((g) => assert.ok(g === 0, `crop 1: ${g}`)));
  const weight = 1 / (crops.length - 1);
  for (const view of [0, 2]) {
    crops[view].forEach((row, b) => {
      const p = row.map((v) => Math.exp((v - Math.max(...row)) / settings.temperature));
      const sum = p.reduce((a, c) => a + c, 0);
      const mass = codes[b].reduce((a, c) => a + c, 0);
      row.forEach((_, k) => {
        const expected = (weight * ((p[k] / sum) * mass - codes[b][k])) / (settings.temperature * crops[view].length);
        assert.ok(Math.abs(gradients[view][b][k] - expected) < 1e-5, `view ${view} [${b},${k}]: ${gradients[view][b][k]} vs ${expected}`);
      });
    });
  }
});
