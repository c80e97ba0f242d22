import type { DifferentiableGraph } from '../runtime/autodiff';

/**
 * Sinkhorn-Knopp as in SwAV's `distributed_sinkhorn`, emitted into `graph` on [B, K] `scores` (after `queue`'s
 * rows when given): Q = exp(scores/ε) / ΣQ, then alternately give every prototype 1/K and every sample 1/B of the
 * mass; returns the batch's rows of B·Q, each summing to 1. Plain ops: the codes are targets, with no gradient.
 */
export function sinkhorn(graph: DifferentiableGraph, scores: string, queue: string | undefined, { epsilon, iterations }: { epsilon: number; iterations: number }): string {
  const [batch, prototypes] = graph.shape(scores);
  const samples = batch + (queue ? graph.shape(queue)[0] : 0);
  const all = [samples, prototypes];
  const pooled = queue ? graph.op('Concat', [queue, scores], all, { axis: 0 }) : scores;
  let q = graph.op('Exp', [graph.op('Div', [pooled, graph.scalar(epsilon)], all)], all);
  q = graph.op('Div', [q, graph.op('ReduceSum', [q], [], { keepdims: 0 })], all);
  for (let i = 0; i < iterations; i++) {
    q = graph.op('Div', [graph.op('Div', [q, graph.op('ReduceSum', [q, graph.ints([0])], [1, prototypes], { keepdims: 1 })], all), graph.scalar(prototypes)], all);
    q = graph.op('Div', [graph.op('Div', [q, graph.op('ReduceSum', [q, graph.ints([1])], [samples, 1], { keepdims: 1 })], all), graph.scalar(samples)], all);
  }
  const codes = graph.op('Mul', [q, graph.scalar(samples)], all);
  return queue ? graph.op('Slice', [codes, graph.ints([samples - batch]), graph.ints([samples]), graph.ints([0])], [batch, prototypes]) : codes;
}
