// Plain-JS (float64) references of SwAV's swapped prediction, and a runner for the small graphs the tests build
// with the engine's graph emitters.
import type { DifferentiableGraph } from '../../../src/engine/runtime/autodiff';
import { encodeModel } from '../../../src/engine/onnx/schema';
import { OrtModel, type OrtArray } from '../../../src/engine/runtime/session';
import { referenceSinkhorn } from './referenceSinkhorn';

export function logSoftmax(row: number[], temperature: number): number[] {
  const scaled = row.map((v) => v / temperature);
  const max = Math.max(...scaled);
  const logSum = Math.log(scaled.reduce((sum, v) => sum + Math.exp(v - max), 0)) + max;
  return scaled.map((v) => v - logSum);
}

/**
 * SwAV's codes for one assigned crop, as `distributed_sinkhorn` on [queue · prototypesᵀ ; scores] (the queue's
 * scores first, when given): the batch's rows.
 */
export function referenceCodes(scores: number[][], queueScores: number[][] | undefined, epsilon: number, iterations: number): number[][] {
  const pooled = [...(queueScores ?? []), ...scores];
  return referenceSinkhorn(pooled, epsilon, iterations).slice(pooled.length - scores.length);
}

/**
 * SwAV's swapped loss with the codes given (one [B, K] array per assigned crop, in `cropsForAssign`'s order):
 * the mean over assigned crops a and the other crops v of −mean_b Σ_k q_a[b, k] log softmax(s_v[b] / T)[k].
 */
export function referenceSwappedLoss(crops: number[][][], codes: number[][][], temperature: number, cropsForAssign: number[]): number {
  let total = 0;
  cropsForAssign.forEach((assigned, position) => {
    let sub = 0;
    crops.forEach((scores, view) => {
      if (view === assigned) return;
      const perSample = scores.map((row, b) => -logSoftmax(row, temperature).reduce((sum, lp, k) => sum + codes[position][b][k] * lp, 0));
      sub += perSample.reduce((a, b) => a + b, 0) / perSample.length;
    });
    total += sub / (crops.length - 1);
  });
  return total / cropsForAssign.length;
}

/** Row-major `values` [rows, columns] as nested arrays (float64 from here on). */
export function rowsOf(values: ArrayLike<number>, rows: number, columns: number, firstRow = 0): number[][] {
  return Array.from({ length: rows }, (_, r) => Array.from({ length: columns }, (_, c) => values[(firstRow + r) * columns + c]));
}

/** `a · bᵀ` of [n, d] and [k, d] arrays. */
export function timesTransposed(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b.map((other) => row.reduce((sum, v, i) => sum + v * other[i], 0)));
}

/** Encodes `graph` (its inputs and outputs as declared) and opens it on onnxruntime's CPU provider. */
export async function openGraph(graph: DifferentiableGraph, name = 'test graph'): Promise<OrtModel> {
  const bytes = encodeModel({
    irVersion: 8,
    producerName: 'cluster-lens-test',
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: name.replace(/\W+/g, '_'), node: graph.nodes, initializer: graph.initializers, input: graph.inputs, output: graph.outputs },
  });
  return OrtModel.open(bytes, name, { device: 'cpu', threads: 1 });
}

/** [rows, columns] nested arrays as a float32 feed. */
export function feedOf(rows: number[][]): OrtArray {
  return { data: Float32Array.from(rows.flat()), dims: [rows.length, rows[0].length] };
}
