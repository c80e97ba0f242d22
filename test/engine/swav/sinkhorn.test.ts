// The Sinkhorn emitter (swav/sinkhorn.ts) in a graph of its own on onnxruntime's CPU provider, against a float64
// reference of SwAV's distributed_sinkhorn (referenceSinkhorn.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DifferentiableGraph } from '../../../src/engine/runtime/autodiff';
import { sinkhorn } from '../../../src/engine/swav/sinkhorn';
import { createRandom } from '../../../src/engine/util/random';
import { referenceSinkhorn } from './referenceSinkhorn';
import { feedOf, openGraph, referenceCodes, rowsOf } from './swavReference';

/** Seeded scores in [−1, 1], rounded to float32 so that the graph and the reference see the same numbers. */
function randomScores(samples: number, prototypes: number, seed: number): number[][] {
  const random = createRandom(seed);
  return Array.from({ length: samples }, () => Array.from({ length: prototypes }, () => Math.fround(random.uniform(-1, 1))));
}

/** The emitter's codes for `scores` (after `queue`'s rows when given), as [B, K] rows. */
async function codesInGraph(scores: number[][], settings: { epsilon: number; iterations: number }, queue?: number[][]): Promise<number[][]> {
  const [batch, prototypes] = [scores.length, scores[0].length];
  const graph = new DifferentiableGraph();
  const input = graph.input('scores', [batch, prototypes], false);
  const queueInput = queue && graph.input('queue', [queue.length, prototypes], false);
  graph.output(sinkhorn(graph, input, queueInput, settings), 'codes');
  const session = await openGraph(graph, 'sinkhorn');
  try {
    const feeds = { scores: feedOf(scores), ...(queue ? { queue: feedOf(queue) } : {}) };
    const { codes } = await session.run(feeds, ['codes']);
    assert.deepEqual(codes.dims, [batch, prototypes]);
    return rowsOf(codes.data, batch, prototypes);
  } finally {
    await session.dispose();
  }
}

const columnSums = (rows: number[][]) => rows[0].map((_, k) => rows.reduce((sum, row) => sum + row[k], 0));
const rowSums = (rows: number[][]) => rows.map((row) => row.reduce((a, b) => a + b, 0));

function assertCloseRows(actual: number[][], expected: number[][], tolerance: number, what: string): void {
  actual.forEach((row, b) => row.forEach((v, k) => assert.ok(Math.abs(v - expected[b][k]) < tolerance, `${what} [${b},${k}]: ${v} vs ${expected[b][k]}`)));
}

test('sinkhorn: each sample sums to 1 and prototypes converge to equal shares', async () => {
  const codes = await codesInGraph(randomScores(64, 8, 1), { epsilon: 0.05, iterations: 50 });
  rowSums(codes).forEach((sum) => assert.ok(Math.abs(sum - 1) < 1e-4, `row sum ${sum}`));
  columnSums(codes).forEach((sum) => assert.ok(Math.abs(sum - 64 / 8) < 1e-2, `prototype mass ${sum}, want 8`));
});

test('sinkhorn: three iterations match the float64 reference of the official order', async () => {
  for (const [samples, prototypes, seed] of [[16, 5, 2], [7, 3, 3]]) {
    const values = randomScores(samples, prototypes, seed);
    const codes = await codesInGraph(values, { epsilon: 0.05, iterations: 3 });
    assertCloseRows(codes, referenceSinkhorn(values, 0.05, 3), 1e-4, `${samples}×${prototypes}`);
    // Three iterations end on the samples' normalisation: rows sum to 1, prototypes only roughly balanced.
    rowSums(codes).forEach((sum) => assert.ok(Math.abs(sum - 1) < 1e-5, `row sum ${sum}`));
  }
  // A softer ε and more iterations, still the reference's numbers.
  const values = randomScores(10, 4, 4);
  assertCloseRows(await codesInGraph(values, { epsilon: 0.2, iterations: 7 }), referenceSinkhorn(values, 0.2, 7), 1e-4, 'ε 0.2, 7 iterations');
});

test('sinkhorn: balances a batch that favours one prototype', async () => {
  // Every sample prefers prototype 0; equipartition must still spread the mass.
  const values = Array.from({ length: 32 }, (_, b) => [0.9, 0.5 + 0.01 * (b % 8), 0.5 - 0.01 * (b % 5), 0.4].map(Math.fround));
  const mass = columnSums(await codesInGraph(values, { epsilon: 0.05, iterations: 3 }));
  assert.ok(mass[0] < 32 * 0.5, `prototype 0 holds ${mass[0]} of 32`);
  mass.forEach((m) => assert.ok(m > 32 * 0.1, `every prototype gets a share, got ${mass}`));
});

test('sinkhorn with a queue: the batch rows of the reference over [queue; batch], which the queue changes', async () => {
  const batch = randomScores(4, 5, 5);
  const queue = randomScores(12, 5, 6);
  const codes = await codesInGraph(batch, { epsilon: 0.05, iterations: 3 }, queue);
  const expected = referenceCodes(batch, queue, 0.05, 3);
  assertCloseRows(codes, expected, 1e-4, 'queued codes');
  // Each of the batch's samples still carries a mass of 1.
  rowSums(codes).forEach((sum) => assert.ok(Math.abs(sum - 1) < 1e-5, `row sum ${sum}`));
  // The queue is not ignored: without it the codes differ.
  const alone = referenceSinkhorn(batch, 0.05, 3);
  const change = Math.max(...codes.flatMap((row, b) => row.map((v, k) => Math.abs(v - alone[b][k]))));
  assert.ok(change > 1e-2, `the queue changed the codes by only ${change}`);
  // Over many iterations the pooled samples share the prototypes equally, so the batch's rows alone need not.
  const converged = await codesInGraph(batch, { epsilon: 0.05, iterations: 60 }, queue);
  const pooled = referenceSinkhorn([...queue, ...batch], 0.05, 60);
  assertCloseRows(converged, pooled.slice(12), 1e-3, 'queued codes after 60 iterations');
  columnSums(pooled).forEach((sum) => assert.ok(Math.abs(sum - 16 / 5) < 1e-2, `pooled prototype mass ${sum}`));
});

test('sinkhorn: the codes are targets, with no gradient back to the scores', () => {
  const graph = new DifferentiableGraph();
  const scores = graph.input('scores', [4, 3], true);
  const queue = graph.input('queue', [6, 3], true);
  const codes = sinkhorn(graph, scores, queue, { epsilon: 0.05, iterations: 3 });
  assert.equal(graph.isDifferentiable(scores), true);
  assert.equal(graph.isDifferentiable(codes), false);
  assert.deepEqual(graph.shape(codes), [4, 3]);
});
