// The CAM family's shared plumbing (as pytorch-grad-cam's BaseCAM): the target's gradient at the explanation
// layer (onDevice.ts, on onnxruntime's device), ReLU of the weighted activations, upsampling and
// normalisation. A variant only says how it weights the activations.
import type { ExplainMethod } from '../../protocol/options';
import { normalizeArray, pairOf, resizeMaps, rowOf, type ExplainableModel, type Explainer, type Explanation, type Pixels, type Target, type TargetKind } from './explainer';
import type { LayerGradients } from './onDevice';
import { copiesGradients } from './target';

/** Weights on the activations A [N, C, h, w] from A and the target's gradients G there, one per activation. */
export type ActivationWeighting = (layer: LayerGradients, count: number) => Float32Array;

/** `reduce` over each map's positions, for every image and channel: [N·C] values. */
export function perChannel(values: Float32Array, layer: LayerGradients, reduce: (map: Float32Array) => number): Float32Array {
  const positions = layer.height * layer.width;
  return Float32Array.from({ length: values.length / positions }, (_, map) => reduce(values.subarray(map * positions, (map + 1) * positions)));
}

/** Per-channel weights [N·C] spread over every position, the shape a weighting returns. */
export function spread(channelWeights: Float32Array, layer: LayerGradients): Float32Array {
  const positions = layer.height * layer.width;
  const weights = new Float32Array(channelWeights.length * positions);
  channelWeights.forEach((weight, map) => weights.fill(weight, map * positions, (map + 1) * positions));
  return weights;
}

export const mean = (map: Float32Array) => map.reduce((sum, value) => sum + value, 0) / map.length;

/** CAM maps (S·S values in [0, 1]) for the image and, for similarity targets, its pair; and the target's value. */
export async function classActivationMaps(net: ExplainableModel, target: Target, image: Pixels, weighting: ActivationWeighting): Promise<{ maps: Float32Array[]; score: number; device: Explanation['device'] }> {
  const pair = pairOf(image, target);
  const gradients = await copiesGradients(net, image.pixels, pair?.pixels, 1, image.sizePx, target.kind === 'prototype' ? target : { kind: 'similarity' }, 'layer');
  const layer = gradients.layer!;
  const count = pair ? 2 : 1;
  const weights = weighting(layer, count);
  const positions = layer.height * layer.width;
  // ReLU(Σ_c w_c,ij · A_c,ij) per image
  const cams = new Float32Array(count * positions);
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < layer.channels; c++) {
      const offset = (n * layer.channels + c) * positions;
      for (let p = 0; p < positions; p++) cams[n * positions + p] += weights[offset + p] * layer.activations[offset + p];
    }
  }
  for (let i = 0; i < cams.length; i++) cams[i] = Math.max(0, cams[i]);
  const upsampled = resizeMaps(cams, count, layer.height, layer.width, image.sizePx);
  const maps = Array.from({ length: count }, (_, n) => normalizeArray(rowOf(upsampled, count, n).slice()));
  return { maps, score: gradients.values[0], device: gradients.device };
}

/** An Explainer from a weighting: the whole of a CAM variant. */
export function camExplainer(method: ExplainMethod, description: string, weighting: ActivationWeighting, targets: readonly TargetKind[] = ['prototype', 'similarity']): Explainer {
  return {
    method,
    description,
    targets,
    defaultTarget: targets.includes('prototype') ? 'assigned' : 'neighbour',
    async explain({ net, image, target }) {
      const { maps, score, device } = await classActivationMaps(net, target, image, weighting);
      return { heatmap: maps[0], pairHeatmap: maps[1], score, device };
    },
  };
}
