// Grad-CAM and the counterfactual as ONNX gradient graphs (runtime/explainGraph.ts) on onnxruntime's chosen
// device: which explanations take that road, the sessions they open (kept for the model being explained), and
// the fall back to tfjs when a graph cannot run.
import type { DeviceKind } from '../../protocol/options';
import type { LogLevel } from '../../protocol/engine';
import type { SwavModel } from '../model/model';
import type { WeightMap } from '../onnx/export';
import { currentDevice } from '../runtime/device';
import { buildCounterfactualGraph, buildForwardGraph, buildGradCamGraph, explainGraphNames as names, maskGradientGraph, ownNetwork, type ExplainGraphs } from '../runtime/explainGraph';
import { OrtModel, type OrtArray } from '../runtime/session';
import { defaultThreadCount } from '../runtime/tfjs/wasmThreads';
import type { ExplainableModel } from './explainer';

/**
 * The engine's own network (not a frozen import) explains through the graphs on every device, the CPU too:
 * scripts/gpu/benchExplainOnnx.ts measured, on 2 cores at 64 and 96 px, Grad-CAM 0.4–0.6 ms against 4.5–12 ms on
 * wasm and a counterfactual step 1.1–1.7 ms against 12 ms, once a run's session is open (opening it costs
 * 50–100 ms, once per run and image size).
 */
export function runsOnDevice(net: ExplainableModel): boolean {
  return net.model !== undefined || net.graphs !== undefined;
}

const ownGraphsByModel = new WeakMap<SwavModel, ExplainGraphs>();

/** The graphs of a network that runs on the device: a frozen import's, or built from the engine's own model. */
export function deviceGraphs(source: ExplainableModel | SwavModel | ExplainGraphs): ExplainGraphs {
  if ('owner' in source) return source;
  if ('variables' in source) return ownGraphs(source);
  if (source.graphs) return source.graphs;
  if (source.model) return ownGraphs(source.model);
  throw new Error('this network does not run on the device');
}

function ownGraphs(model: SwavModel): ExplainGraphs {
  let graphs = ownGraphsByModel.get(model);
  if (!graphs) {
    graphs = {
      owner: model,
      channels: model.spec.channels,
      prototypes: model.spec.prototypes,
      forward: async (dims) => buildForwardGraph(model.spec, weightsOf(model), dims),
      gradCam: async (dims) => buildGradCamGraph(model.spec, weightsOf(model), dims),
      counterfactual: async (settings) => buildCounterfactualGraph(model.spec, weightsOf(model), settings),
      maskGradient: async (settings) => maskGradientGraph(ownNetwork(model.spec, weightsOf(model)), settings),
    };
    ownGraphsByModel.set(model, graphs);
  }
  return graphs;
}

export function weightsOf(model: SwavModel): WeightMap {
  return new Map([...model.variables].map(([name, variable]) => [name, { shape: variable.shape, values: variable.dataSync() as Float32Array }]));
}

// Sessions of the one model explained last: a run's explanations reuse them, another run's replace them.
let cache: { owner: object; sessions: Map<string, Promise<OrtModel>> } | undefined;

/** The session for `key` (graph and device) on `owner`'s graphs (a model), built on first use. */
export function explainSession(owner: object, key: string, build: () => Uint8Array | Promise<Uint8Array>, device: DeviceKind = currentDevice().device): Promise<OrtModel> {
  if (cache?.owner !== owner) {
    for (const session of cache?.sessions.values() ?? []) void session.then((opened) => opened.dispose(), () => undefined);
    cache = { owner, sessions: new Map() };
  }
  const fullKey = `${device}:${key}`;
  let session = cache.sessions.get(fullKey);
  if (!session) {
    session = Promise.resolve()
      .then(build)
      .then((bytes) => OrtModel.open(bytes, `the ${key} graph (in memory)`, { device, threads: device === 'cpu' ? defaultThreadCount() : undefined }));
    // A session that failed to open is not kept: the next request tries again.
    session.catch(() => cache?.sessions.delete(fullKey));
    cache.sessions.set(fullKey, session);
  }
  return session;
}

/** Runs `onDevice`, and `onTfjs` when it fails, saying so in the log. */
export async function withTfjsFallback<T>(method: string, log: ((level: LogLevel, message: string) => void) | undefined, onDevice: () => Promise<T>, onTfjs: () => Promise<T>): Promise<T> {
  try {
    return await onDevice();
  } catch (error) {
    if ((error as Error)?.name === 'AbortError' || (error as { code?: string })?.code === 'CANCELLED') throw error;
    log?.('warn', `${method} on ${currentDevice().device} failed (${String((error as Error)?.message ?? error).split('\n')[0]}); running it on tfjs instead.`);
    return onTfjs();
  }
}

/**
 * `count` images through a forward session whose batch is fixed at `batch`: `fill` writes images start…start+size−1
 * into the chunk, whose other rows stay black (the last chunk is padded), and `take` gets each chunk's outputs.
 */
export async function runPaddedBatches(
  session: OrtModel,
  count: number,
  batch: number,
  image: { sizePx: number; channels: number },
  outputs: string[],
  fill: (chunk: Float32Array, start: number, size: number) => void,
  take: (results: Record<string, OrtArray>, start: number, size: number) => void,
): Promise<void> {
  const chunk = new Float32Array(batch * image.sizePx * image.sizePx * image.channels);
  for (let start = 0; start < count; start += batch) {
    const size = Math.min(batch, count - start);
    chunk.fill(0);
    fill(chunk, start, size);
    take(await session.run({ [names.images]: { data: chunk, dims: [batch, image.sizePx, image.sizePx, image.channels] } }, outputs), start, size);
  }
}

/** A `fill` for runPaddedBatches that copies images start…start+size−1 of `images` (NHWC, `perImage` values each). */
export function copyImages(images: Float32Array, perImage: number): (chunk: Float32Array, start: number, size: number) => void {
  return (chunk, start, size) => chunk.set(images.subarray(start * perImage, (start + size) * perImage));
}

/**
 * The batched forward path: features [count × F] and prototype scores [count × K] of `count` NHWC images in [0, 1],
 * `batch` at a time on onnxruntime's device (the last batch padded with black images). Every network that runs
 * on the device has it, a frozen import included; methods that only score images (occlusion, masks) need no more.
 */
export async function scoreImagesOnDevice(
  source: ExplainableModel | SwavModel | ExplainGraphs,
  images: Float32Array,
  count: number,
  sizePx: number,
  batch = Math.min(count, 32),
  device?: DeviceKind,
): Promise<{ features: Float32Array; scores: Float32Array; device: DeviceKind }> {
  const graphs = deviceGraphs(source);
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
