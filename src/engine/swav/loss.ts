import type { DifferentiableGraph } from '../runtime/autodiff';

export interface SwapLossSettings {
  temperature: number;
  epsilon: number;
  sinkhornIterations: number;
  /** Crops whose codes the other crops predict (SwAV's `crops_for_assign`). */
  cropsForAssign: number[];
}

/**
 * SwAV's swapped prediction, emitted into `graph`: for each assigned crop a, codes q_a = codesOf(scores_a), and
 * every other crop v predicts them: loss = mean over a and v of −mean_b Σ_k q_a log softmax(scores_v / T).
 * `cropScores` are each crop's [B, K] scores. Returns the loss and its gradient with respect to each crop's
 * scores, Σ_a (p_v · Σ_k q_a − q_a) / (T · B) times the same weight, written out so the codes stay targets.
 */
export function swapLoss(
  graph: DifferentiableGraph,
  cropScores: string[],
  settings: Pick<SwapLossSettings, 'temperature' | 'cropsForAssign'>,
  codesOf: (scores: string, position: number) => string,
): { loss: string; scoreGradients: string[] } {
  const rows = graph.shape(cropScores[0]);
  const [batch] = rows;
  const views = cropScores.length;
  // log softmax(s/T) = z − max z − log Σ exp(z − max z), written out: WebGPU has no LogSoftmax kernel, and
  // onnxruntime would copy the scores to the CPU and back for it.
  const logProbabilities = cropScores.map((scores) => {
    const z = graph.op('Div', [scores, graph.scalar(settings.temperature)], rows);
    const shifted = graph.op('Sub', [z, graph.op('ReduceMax', [z], [batch, 1], { axes: [1], keepdims: 1 })], rows);
    const logSum = graph.op('Log', [graph.op('ReduceSum', [graph.op('Exp', [shifted], rows), graph.ints([1])], [batch, 1], { keepdims: 1 })], [batch, 1]);
    return graph.op('Sub', [shifted, logSum], rows);
  });
  const probabilities = logProbabilities.map((logP) => graph.op('Exp', [logP], rows));
  const weight = 1 / (settings.cropsForAssign.length * (views - 1));
  const gradients: string[][] = cropScores.map(() => []);
  const terms: string[] = [];
  settings.cropsForAssign.forEach((assigned, position) => {
    const codes = codesOf(cropScores[assigned], position);
    const codeMass = graph.op('ReduceSum', [codes, graph.ints([1])], [batch, 1], { keepdims: 1 });
    for (let view = 0; view < views; view++) {
      if (view === assigned) continue;
      terms.push(graph.op('ReduceSum', [graph.op('Mul', [codes, logProbabilities[view]], rows)], [], { keepdims: 0 }));
      const difference = graph.op('Sub', [graph.op('Mul', [probabilities[view], codeMass], rows), codes], rows);
      gradients[view].push(graph.op('Mul', [difference, graph.scalar(weight / (settings.temperature * batch))], rows));
    }
  });
  const total = terms.reduce((sum, term) => graph.op('Add', [sum, term], []));
  // A crop that predicts no codes (the only assigned crop, with itself left out) gets no gradient.
  const sumOf = (parts: string[], view: number) =>
    parts.length ? parts.reduce((sum, part) => graph.op('Add', [sum, part], rows)) : graph.op('Mul', [cropScores[view], graph.scalar(0)], rows);
  return { loss: graph.op('Mul', [total, graph.scalar(-weight / batch)], []), scoreGradients: gradients.map(sumOf) };
}
