// The plumbing every explanation method shares (as pytorch-grad-cam's BaseCAM): the network's graphs
// (runtime/explainGraph.ts), their sessions on onnxruntime's chosen device, and the padded batch runner that
// feeds them. A method only says what it computes from the scores, features and gradients these return.
import type { DeviceKind } from '../../protocol/options';
import { weightsOf, type ModelSpec, type SwavModel } from '../model/model';
import type { WeightMap } from '../onnx/export';
import { currentDevice } from '../runtime/device';
import { counterfactualGraph, explainGraphNames as names, forwardGraph, maskGradientGraph, ownNetwork, targetGradientGraph, type ExplainGraphs } from '../runtime/explainGraph';
import { OrtModel, type OrtArray } from '../runtime/session';
import { cpuThreadCount } from '../runtime/threads';
import type { ExplainableModel } from './explainer';

/** The graphs of the engine's own network, from its description and weights; sessions are kept for `owner`. */
export function ownGraphs(spec: ModelSpec, weights: () => WeightMap, owner: object): ExplainGraphs {
  const network = () => ownNetwork(spec, weights());
  return {
    owner,
    kind: 'own',
    channels: spec.channels,
    prototypes: spec.prototypes,
    forward: async (dims) => forwardGraph(network(), dims),
    targetGradient: async (settings) => targetGradientGraph(network(), settings),
    counterfactual: async (settings) => counterfactualGraph(network(), settings),
    maskGradient: async (settings) => maskGradientGraph(network(), settings),
  };
}

const ownByModel = new WeakMap<SwavModel, ExplainGraphs>();

/** The engine's own model as the explanation methods see it. */
export function ownExplainable(model: SwavModel, temperature: number): ExplainableModel {
  let graphs = ownByModel.get(model);
  if (!graphs) {
    graphs = ownGraphs(model.spec, () => weightsOf(model), model);
    ownByModel.set(model, graphs);
  }
  return { graphs, prototypes: model.spec.prototypes, temperature };
}


// Sessions of the one model explained last: a run's explanations reuse them, another run's replace them.
let cache: { owner: object; sessions: Map<string, Promise<OrtModel>> } | undefined;

/** The session for `key` (graph and device) on `owner`'s graphs (a model), built on first use. */
export function explainSession(owner: object, key: string, build: () => Uint8Array | Promise<Uint8Array>, device: DeviceKind = currentDevice().device): Promise<OrtModel> {
  if (cache?.owner !== owner) {
    closeExplainSessions();
    cache = { owner, sessions: new Map() };
  }
  const fullKey = `${device}:${key}`;
  let session = cache.sessions.get(fullKey);
  if (!session) {
    session = Promise.resolve()
      .then(build)
      .then((bytes) => OrtModel.open(bytes, `the ${key} graph (in memory)`, { device, threads: device === 'cpu' ? cpuThreadCount() : undefined }));
    // A session that failed to open is not kept: the next request tries again.
    session.catch(() => cache?.sessions.delete(fullKey));
    cache.sessions.set(fullKey, session);
  }
  return session;
}

/** How many sessions are kept: those of the one model explained last, a few per graph and image size. */
export function openExplainSessions(): number {
  return cache?.sessions.size ?? 0;
}

/** Closes the kept sessions (a run closed, a test's end). */
export function closeExplainSessions(): void {
  for (const session of cache?.sessions.values() ?? []) void session.then((opened) => opened.dispose(), () => undefined);
  cache = undefined;
}

/** Per-chunk inputs besides the images: each is `perRow` values a row, copied for rows start…start+size−1. */
export type RowInputs = Record<string, { values: Float32Array; perRow: number }>;

/**
 * `count` images through a session whose batch is fixed at `batch`: `fill` writes images start…start+size−1
 * into the chunk, whose other rows stay black (the last chunk is padded), `rows` gives the other inputs row by
 * row (padded with zeros), and `take` gets each chunk's outputs.
 */
export async function runPaddedBatches(
  session: OrtModel,
  count: number,
  batch: number,
  image: { sizePx: number; channels: number },
  outputs: string[],
  fill: (chunk: Float32Array, start: number, size: number) => void,
  take: (results: Record<string, OrtArray>, start: number, size: number) => void,
  rows: RowInputs = {},
): Promise<void> {
  const chunk = new Float32Array(batch * image.sizePx * image.sizePx * image.channels);
  const rowChunks = Object.entries(rows).map(([name, { values, perRow }]) => ({ name, values, perRow, chunk: new Float32Array(batch * perRow) }));
  for (let start = 0; start < count; start += batch) {
    const size = Math.min(batch, count - start);
    chunk.fill(0);
    fill(chunk, start, size);
    const inputs: Record<string, { data: Float32Array; dims: number[] }> = { [names.images]: { data: chunk, dims: [batch, image.sizePx, image.sizePx, image.channels] } };
    for (const row of rowChunks) {
      row.chunk.fill(0);
      row.chunk.set(row.values.subarray(start * row.perRow, (start + size) * row.perRow));
      inputs[row.name] = { data: row.chunk, dims: [batch, row.perRow] };
    }
    take(await session.run(inputs, outputs), start, size);
  }
}

/** A `fill` for runPaddedBatches that copies images start…start+size−1 of `images` (NHWC, `perImage` values each). */
export function copyImages(images: Float32Array, perImage: number): (chunk: Float32Array, start: number, size: number) => void {
  return (chunk, start, size) => chunk.set(images.subarray(start * perImage, (start + size) * perImage));
}

/** The graphs' fixed batch for `count` images: up to `limit` a run. */
function batchFor(count: number, limit: number): number {
  return Math.max(1, Math.min(count, limit));
}

/**
 * A session's batch, rounded up to a power of two: sessions are kept per batch size (an imported backbone's each
 * holds its weights), so a run's explanations open a few of them, not one for every count of images asked for.
 */
export function sessionBatch(batch: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, batch)));
}

/**
 * The batched forward path: features [count × F] and prototype scores [count × K] of `count` NHWC images in [0, 1],
 * `batch` at a time on onnxruntime's device (the last batch padded with black images).
 */
export async function scoreImagesOnDevice(
  net: ExplainableModel | ExplainGraphs,
  images: Float32Array,
  count: number,
  sizePx: number,
  batch = batchFor(count, 32),
  device?: DeviceKind,
): Promise<{ features: Float32Array; scores: Float32Array; device: DeviceKind }> {
  const graphs = 'graphs' in net ? net.graphs : net;
  batch = sessionBatch(batch);
  const perImage = sizePx * sizePx * graphs.channels;
  const session = await explainSession(graphs.owner, `forward ${batch}×${sizePx}px`, () => graphs.forward({ batch, imageSizePx: sizePx }), device);
  let features = new Float32Array(0);
  const scores = new Float32Array(count * graphs.prototypes);
  await runPaddedBatches(session, count, batch, { sizePx, channels: graphs.channels }, [names.features, names.scores], copyImages(images, perImage), (outputs, start, size) => {
    const width = outputs[names.features].dims[1];
    if (features.length === 0) features = new Float32Array(count * width);
    features.set(outputs[names.features].data.subarray(0, size * width), start * width);
    scores.set(outputs[names.scores].data.subarray(0, size * graphs.prototypes), start * graphs.prototypes);
  });
  return { features, scores, device: session.device };
}

/** What each row's target is: one prototype's score for every row, or the cosine with that row's reference features. */
export type GradientTarget = { kind: 'prototype'; prototype: number } | { kind: 'similarity'; references: Float32Array };

/** The explanation layer of `count` images as maps [count, C, h, w], and the target's gradient there. */
export interface LayerGradients {
  activations: Float32Array;
  gradients: Float32Array;
  channels: number;
  height: number;
  width: number;
}

export interface TargetGradients {
  /** Each row's target value, [count]. */
  values: Float32Array;
  /** wrt 'layer'. */
  layer?: LayerGradients;
  /** wrt 'image': ∂y/∂pixels, [count, S, S, C]. */
  imageGradients?: Float32Array;
  device: DeviceKind;
}

/**
 * The target of each of `count` images (NHWC, in [0, 1]) and its gradient at the explanation layer or at the
 * pixels, `batch` images a run of runtime/explainGraph.ts's targetGradientGraph on onnxruntime's device.
 */
export async function targetGradients(net: ExplainableModel, images: Float32Array, count: number, sizePx: number, target: GradientTarget, wrt: 'layer' | 'image', batch = batchFor(count, 32), device?: DeviceKind): Promise<TargetGradients> {
  const { graphs } = net;
  batch = sessionBatch(batch);
  const perImage = sizePx * sizePx * graphs.channels;
  const session = await explainSession(graphs.owner, `${target.kind} gradient at the ${wrt} ${batch}×${sizePx}px`, () => graphs.targetGradient({ batch, imageSizePx: sizePx, target: target.kind, wrt }), device);
  let rows: RowInputs;
  if (target.kind === 'prototype') {
    const oneHot = new Float32Array(count * graphs.prototypes);
    for (let row = 0; row < count; row++) oneHot[row * graphs.prototypes + target.prototype] = 1;
    rows = { [names.target]: { values: oneHot, perRow: graphs.prototypes } };
  } else {
    rows = { [names.reference]: { values: target.references, perRow: target.references.length / count } };
  }
  const values = new Float32Array(count);
  const result: TargetGradients = { values, device: session.device };
  const outputs = wrt === 'layer' ? [names.value, names.featureMap, names.featureGradient] : [names.value, names.imageGradient];
  await runPaddedBatches(
    session,
    count,
    batch,
    { sizePx, channels: graphs.channels },
    outputs,
    copyImages(images, perImage),
    (out, start, size) => {
      values.set(out[names.value].data.subarray(0, size), start);
      if (wrt === 'image') {
        result.imageGradients ??= new Float32Array(count * perImage);
        result.imageGradients.set(out[names.imageGradient].data.subarray(0, size * perImage), start * perImage);
        return;
      }
      const [, channels, height, width] = out[names.featureMap].dims;
      const perMap = channels * height * width;
      result.layer ??= { activations: new Float32Array(count * perMap), gradients: new Float32Array(count * perMap), channels, height, width };
      result.layer.activations.set(out[names.featureMap].data.subarray(0, size * perMap), start * perMap);
      result.layer.gradients.set(out[names.featureGradient].data.subarray(0, size * perMap), start * perMap);
    },
    rows,
  );
  return result;
}
