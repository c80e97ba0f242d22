// An imported backbone with a trained head, as the explanation methods see it: its graphs (forward, the target's
// gradient, the counterfactual steps, attention) built from the ONNX graph itself by runtime/importedGraph.ts.
import type { SwavModel } from '../model/model';
import type { BackboneInput } from '../onnx/backboneInput';
import type { WeightMap } from '../onnx/export';
import type { OnnxGraph } from '../onnx/graph';
import { OnnxModelError } from '../onnx/onnxError';
import { attentionGraph, counterfactualGraph, forwardGraph, importedNetwork, maskGradientGraph, targetGradientGraph, type ExplainGraphs, type ImportedLayer } from '../runtime/explainGraph';
import { DifferentiableGraph } from '../runtime/autodiff';
import { checkOpset, emitBackbone, importedBackbone, probeBackbone, type ProbedValue } from '../runtime/importedGraph';

/**
 * The Grad-CAM layer of an imported graph: the input of the last spatial pooling (GlobalAveragePool,
 * or ReduceMean) on the way to `featureOutput`, or the output itself when it is a feature map.
 */
export function lastFeatureMapName(graph: OnnxGraph, featureOutput: string): string {
  if (graph.outputs.find((output) => output.name === featureOutput)?.dims?.length === 4) return featureOutput;
  const producer = new Map(graph.nodes.flatMap((node) => node.outputs.map((output) => [output, node] as const)));
  const seen = new Set<string>();
  // Walk back from the features along first inputs (the data path), to the nearest pooling.
  for (let name: string | undefined = featureOutput; name && !seen.has(name); name = producer.get(name)?.inputs[0]) {
    seen.add(name);
    const node = producer.get(name);
    if (node && (node.opType === 'GlobalAveragePool' || node.opType === 'ReduceMean')) return node.inputs[0];
  }
  throw new OnnxModelError('unsupported', graph.file, `No feature map found in ${graph.file}: the features are not computed by a GlobalAveragePool or ReduceMean over a convolutional map, which Grad-CAM needs.`);
}

/**
 * Where Grad-CAM looks: a CNN's last feature map (lastFeatureMapName); for a transformer, the tokens entering
 * the last attention (the last block's first LayerNorm, as pytorch-grad-cam's ViT recipe), reshaped to their
 * patch grid after the class (and register) tokens. `probe` gives the values' shapes.
 */
export function explainLayer(graph: OnnxGraph, probe: Map<string, ProbedValue>, featureOutput: string): ImportedLayer {
  try {
    const name = lastFeatureMapName(graph, featureOutput);
    if (probe.get(name)?.dims.length === 4) return { name, kind: 'map' };
  } catch (error) {
    if (!(error instanceof OnnxModelError)) throw error;
  }
  const producer = new Map(graph.nodes.flatMap((node) => node.outputs.map((output) => [output, node] as const)));
  const softmax = [...graph.nodes].reverse().find((node) => node.opType === 'Softmax');
  const width = probe.get(featureOutput)?.dims.at(-1);
  if (softmax) {
    // Breadth-first back from the last attention to the nearest normalised token sequence [N, T, D].
    const queue = [...softmax.inputs];
    const seen = new Set(queue);
    while (queue.length) {
      const name = queue.shift()!;
      const node = producer.get(name);
      if (!node) continue;
      const dims = probe.get(name)?.dims;
      const isTokens = dims?.length === 3 && dims[2] === width;
      if (isTokens && (node.opType === 'LayerNormalization' || node.opType === 'Add')) {
        const tokens = dims![1];
        const grid = Math.floor(Math.sqrt(tokens));
        const prefixTokens = tokens - grid * grid;
        if (grid > 1 && prefixTokens <= 8) return { name, kind: 'tokens', prefixTokens, grid };
      }
      for (const input of node.inputs) {
        if (input && !seen.has(input)) {
          seen.add(input);
          queue.push(input);
        }
      }
    }
  }
  throw new OnnxModelError(
    'unsupported',
    graph.file,
    `No layer for Grad-CAM found in ${graph.file}: neither a convolutional feature map pooled into the features, nor the patch tokens [batch, tokens, ${width ?? 'width'}] entering a last attention.`,
  );
}

/** explainLayer, or the error that says why the graph has none (methods that need no layer still run). */
function layerOrError(graph: OnnxGraph, probe: Map<string, ProbedValue>, featureOutput: string): ImportedLayer | OnnxModelError {
  try {
    return explainLayer(graph, probe, featureOutput);
  } catch (error) {
    if (error instanceof OnnxModelError) return error;
    throw error;
  }
}

/**
 * The gradient graphs of an imported backbone with the run's head. The backbone is probed (shapes) once per
 * batch and size, on first use.
 */
export function importedGraphs(bytes: Uint8Array, graph: OnnxGraph, input: BackboneInput, headModel: SwavModel, weights: () => WeightMap): ExplainGraphs {
  checkOpset(graph);
  const probes = new Map<string, Promise<Map<string, ProbedValue>>>();
  const probe = (batch: number, imageSizePx: number) => {
    const key = `${batch}×${imageSizePx}`;
    let found = probes.get(key);
    if (!found) {
      found = probeBackbone(bytes, graph, input.name, [batch, input.channels, imageSizePx, imageSizePx]);
      found.catch(() => probes.delete(key));
      probes.set(key, found);
    }
    return found;
  };
  const network = async (batch: number, imageSizePx: number, shapes: boolean) => {
    const probed = await probe(1, imageSizePx);
    const layer = layerOrError(graph, probed, input.featureOutput);
    // The forward graph needs no shapes but the features' (a probe at a large batch would hold every activation).
    const values = shapes ? (batch === 1 ? probed : await probe(batch, imageSizePx)) : new Map<string, ProbedValue>();
    const backbone = importedBackbone(bytes, graph, input.name, input.featureOutput, values, [batch, input.channels, imageSizePx, imageSizePx]);
    return importedNetwork(backbone, weights(), input, headModel.spec.prototypes, layer, probed.get(input.featureOutput)!.dims.slice(1));
  };
  return {
    owner: headModel,
    kind: 'imported',
    channels: input.channels,
    prototypes: headModel.spec.prototypes,
    forward: async (dims) => forwardGraph(await network(dims.batch, dims.imageSizePx, false), dims),
    targetGradient: async (settings) => targetGradientGraph(await network(settings.batch, settings.imageSizePx, true), settings),
    counterfactual: async (settings) => counterfactualGraph(await network(1, settings.imageSizePx, true), settings),
    maskGradient: async (settings) => maskGradientGraph(await network(settings.batch, settings.imageSizePx, true), settings),
    attention: async (imageSizePx) => {
      const probed = await probe(1, imageSizePx);
      const layer = explainLayer(graph, probed, input.featureOutput);
      // Every attention: a Softmax over the tokens, [N, heads, T, T] (or [N·heads, T, T]).
      const tokens = layer.kind === 'tokens' ? layer.prefixTokens + layer.grid * layer.grid : 0;
      const attentions = graph.nodes.filter((node) => node.opType === 'Softmax' && probed.get(node.outputs[0])?.dims.slice(-2).every((size) => size === tokens)).map((node) => node.outputs[0]);
      if (layer.kind !== 'tokens' || attentions.length === 0) {
        throw new OnnxModelError('unsupported', graph.file, `Attention rollout needs a transformer: ${graph.file} has no attention over its patch tokens. Use gradcam.`);
      }
      const backbone = importedBackbone(bytes, graph, input.name, input.featureOutput, probed, [1, input.channels, imageSizePx, imageSizePx]);
      return { bytes: attentionGraph(backbone, input, attentions, imageSizePx), layers: attentions.length, prefixTokens: layer.prefixTokens, grid: layer.grid };
    },
  };
}

/**
 * Whether Grad-CAM and counterfactuals can run on the backbone at `sizePx`: every operator from the image to the
 * features has a gradient rule. Throws the OnnxModelError that names the first one without.
 */
export async function checkExplainable(bytes: Uint8Array, graph: OnnxGraph, input: BackboneInput, sizePx: number): Promise<void> {
  checkOpset(graph);
  const dims = [1, input.channels, sizePx, sizePx];
  const probe = await probeBackbone(bytes, graph, input.name, dims);
  const layer = explainLayer(graph, probe, input.featureOutput);
  const builder = new DifferentiableGraph();
  emitBackbone(builder, importedBackbone(bytes, graph, input.name, input.featureOutput, probe, dims), builder.input('image', dims, true), [input.featureOutput, layer.name]);
}
