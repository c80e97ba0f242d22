// Attention rollout (Abnar & Zuidema 2020), for transformer backbones: each layer's attention averaged over its
// heads, with the residual connection as ½·A + ½·I and rows renormalised, multiplied through the layers; the class
// token's row over the patch tokens, on the patch grid, is the map. It explains what the representation attends to,
// whichever cluster is asked. A frozen import's attention comes from its ONNX graph's Softmax outputs, on onnxruntime.
import { EngineError } from '../errors';
import { explainGraphNames as names, type ExplainGraphs } from '../runtime/explainGraph';
import { normalizeArray, resizeMaps, type Explainer } from './explainer';
import { explainSession, scoreImagesOnDevice } from './onDevice';

type Layout = { layers: number; prefixTokens: number; grid: number };
const layouts = new WeakMap<object, Map<number, Promise<{ bytes: Uint8Array } & Layout>>>();

/** Rollout over `attentions` (each heads·T·T values): the class token's row (or, without one, the mean row) over the last grid² tokens. */
export function rollout(attentions: Float32Array[], tokens: number, prefixTokens: number): Float32Array {
  let joint = Float64Array.from({ length: tokens * tokens }, (_, i) => (Math.floor(i / tokens) === i % tokens ? 1 : 0));
  for (const attention of attentions) {
    const heads = attention.length / (tokens * tokens);
    const layer = new Float64Array(tokens * tokens);
    for (let h = 0; h < heads; h++) for (let i = 0; i < tokens * tokens; i++) layer[i] += attention[h * tokens * tokens + i] / heads;
    for (let row = 0; row < tokens; row++) {
      let sum = 0;
      for (let column = 0; column < tokens; column++) sum += layer[row * tokens + column] = 0.5 * layer[row * tokens + column] + (row === column ? 0.5 : 0);
      for (let column = 0; column < tokens; column++) layer[row * tokens + column] /= sum;
    }
    const next = new Float64Array(tokens * tokens);
    for (let row = 0; row < tokens; row++) {
      for (let k = 0; k < tokens; k++) {
        const weight = layer[row * tokens + k];
        if (weight === 0) continue;
        for (let column = 0; column < tokens; column++) next[row * tokens + column] += weight * joint[k * tokens + column];
      }
    }
    joint = next;
  }
  const patches = tokens - prefixTokens;
  const map = new Float32Array(patches);
  const rows = prefixTokens > 0 ? [0] : Array.from({ length: tokens }, (_, row) => row);
  for (const row of rows) for (let p = 0; p < patches; p++) map[p] += joint[row * tokens + prefixTokens + p] / rows.length;
  return map;
}

export const attentionRollout: Explainer = {
  method: 'attention-rollout',
  description: "Attention rollout (Abnar & Zuidema 2020): a transformer's attention multiplied through its layers, the class token's share of each patch",
  targets: ['prototype'],
  defaultTarget: 'assigned',
  async explain({ net, image, target }) {
    const graphs: ExplainGraphs = net.graphs;
    if (!graphs.attention) throw new EngineError('BAD_REQUEST', 'Attention rollout needs a transformer backbone (an imported ViT, say); this run has none. Use gradcam.');
    if (target.kind !== 'prototype') throw new Error('attention rollout explains one image');
    const { sizePx } = image;
    let bySize = layouts.get(graphs.owner);
    if (!bySize) layouts.set(graphs.owner, (bySize = new Map()));
    let built = bySize.get(sizePx);
    if (!built) {
      built = graphs.attention!(sizePx);
      built.catch(() => bySize!.delete(sizePx));
      bySize.set(sizePx, built);
    }
    const { layers, prefixTokens, grid } = await built;
    const session = await explainSession(graphs.owner, `attention ${sizePx}px`, async () => (await built).bytes);
    const { pixels } = image;
    const outputs = await session.run({ [names.images]: { data: pixels, dims: [1, sizePx, sizePx, graphs.channels] } }, Array.from({ length: layers }, (_, i) => names.attention(i)));
    const tokens = prefixTokens + grid * grid;
    const map = rollout(Array.from({ length: layers }, (_, i) => outputs[names.attention(i)].data), tokens, prefixTokens);
    const heatmap = normalizeArray(resizeMaps(map, 1, grid, grid, sizePx));
    const { scores } = await scoreImagesOnDevice(net, pixels, 1, sizePx);
    return { heatmap, score: scores[target.prototype], device: session.device };
  },
};
