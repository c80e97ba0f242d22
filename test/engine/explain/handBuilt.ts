// Hand-built networks for explanation tests whose answers are known: written as graph ops (runtime/autodiff.ts),
// so that every method runs them through the same graphs and sessions as the engine's own network.
import type { ExplainableModel } from '../../../src/engine/explain/explainer';
import { DifferentiableGraph } from '../../../src/engine/runtime/autodiff';
import { counterfactualGraph, forwardGraph, maskGradientGraph, targetGradientGraph, type ExplainNetwork } from '../../../src/engine/runtime/explainGraph';
import { OrtModel } from '../../../src/engine/runtime/session';

/** What a hand-built network computes from NCHW images [N, C, S, S]: its explanation layer [N, C′, h, w] and its scores [N, K]. */
export type HandBuiltBody = (graph: DifferentiableGraph, images: string, watch: (layer: string) => string) => { layer: string; features?: string; scores: string };

/** A network from graph ops; features default to the layer's spatial mean. */
export function handBuiltNet(body: HandBuiltBody, { channels, prototypes, temperature = 0.1 }: { channels: number; prototypes: number; temperature?: number }): ExplainableModel {
  const network: ExplainNetwork = {
    channels,
    prototypes,
    emit: (graph, images, watchLayer) => {
      const nchw = graph.transpose(images, [0, 3, 1, 2]);
      const { layer, features, scores } = body(graph, nchw, (value) => (watchLayer ? graph.watch(value) : value));
      return { layer, toMap: (value) => value, features: features ?? graph.spatialMean(layer), scores };
    },
  };
  return {
    prototypes,
    temperature,
    graphs: {
      owner: {},
      kind: 'own',
      channels,
      prototypes,
      forward: async (dims) => forwardGraph(network, dims),
      targetGradient: async (settings) => targetGradientGraph(network, settings),
      counterfactual: async (settings) => counterfactualGraph(network, settings),
      maskGradient: async (settings) => maskGradientGraph(network, settings),
    },
  };
}

/** x ⊙ mask, with a constant mask broadcast against x (its gradient is dy ⊙ mask). */
export function masked(graph: DifferentiableGraph, x: string, mask: Float32Array, maskShape: number[]): string {
  return graph.scaleShift(x, graph.floats(mask, maskShape), graph.scalar(0));
}

/** a ⊙ b for two values of one shape, differentiable in both. */
export function product(graph: DifferentiableGraph, a: string, b: string): string {
  const shape = graph.shape(a);
  const y = graph.op('Mul', [a, b], shape);
  return graph.track([a, b], y, (dy) => {
    graph.gradientTo(a, graph.op('Mul', [dy, b], shape));
    graph.gradientTo(b, graph.op('Mul', [dy, a], shape));
  });
}

/** `x` reshaped, differentiable. */
export function reshaped(graph: DifferentiableGraph, x: string, shape: number[]): string {
  const from = graph.shape(x);
  const y = graph.op('Reshape', [x, graph.ints(shape)], shape);
  return graph.track([x], y, (dy) => graph.gradientTo(x, graph.op('Reshape', [dy, graph.ints(from)], from)));
}

/** Columns [n, 1] side by side, [n, k], differentiable. */
export function columns(graph: DifferentiableGraph, parts: string[]): string {
  const [n] = graph.shape(parts[0]);
  const y = graph.op('Concat', parts, [n, parts.length], { axis: 1 });
  return graph.track(parts, y, (dy) => parts.forEach((part, k) => graph.gradientTo(part, graph.op('Slice', [dy, graph.ints([k]), graph.ints([k + 1]), graph.ints([1])], [n, 1]))));
}

/** Counts onnxruntime session runs while `work` runs (every forward or gradient pass is one run). */
export async function countRuns<T>(work: () => Promise<T>): Promise<{ result: T; runs: number }> {
  const original = OrtModel.prototype.run;
  let runs = 0;
  OrtModel.prototype.run = function (this: OrtModel, ...args: Parameters<OrtModel['run']>) {
    runs++;
    return original.apply(this, args);
  };
  try {
    return { result: await work(), runs };
  } finally {
    OrtModel.prototype.run = original;
  }
}
