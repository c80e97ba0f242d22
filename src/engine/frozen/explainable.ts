// An imported backbone (converted to tfjs) with a trained head, as the explanation methods see a model.
import * as tf from '@tensorflow/tfjs-core';
import type { ExplainableModel } from '../explain/explainer';
import { head, type SwavModel } from '../model/model';
import type { OnnxGraph } from '../onnx/graph';
import { OnnxModelError } from '../onnx/onnxError';
import type { TfjsBackbone } from '../onnx/tfjsBackbone';

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

/** Explanations on an imported backbone: its last feature map, then the rest of its graph and the SwAV head. */
export function onnxExplainable(backbone: TfjsBackbone, headModel: SwavModel, temperature: number, mapName = lastFeatureMapName(backbone.graph, backbone.input.featureOutput)): ExplainableModel {
  return {
    prototypes: headModel.spec.prototypes,
    temperature,
    featureMap: (images) => tf.tidy(() => backbone.values(images, [mapName])[0] as tf.Tensor4D),
    outputs: (map) =>
      tf.tidy(() => {
        const features = backbone.featuresFrom(mapName, map);
        return { features, scores: head(headModel, features, 'eval').scores };
      }),
  };
}
