// Grad-CAM and the counterfactual as ONNX gradient graphs (runtime/explainGraph.ts) on onnxruntime's chosen
// device: which explanations take that road, the sessions they open (kept for the model being explained), and
// the fall back to tfjs when a graph cannot run.
import type { DeviceKind, LogLevel } from '../../protocol';
import type { SwavModel } from '../model/model';
import type { WeightMap } from '../onnx/export';
import { currentDevice } from '../runtime/device';
import { OrtModel } from '../runtime/session';
import { defaultThreadCount } from '../runtime/tfjs/wasmThreads';
import type { ExplainableModel } from './explainer';

/**
 * The engine's own network (not a frozen import) explains through the graphs on every device, the CPU too:
 * scripts/gpu/benchExplainOnnx.ts measured, on 2 cores at 64 and 96 px, Grad-CAM 0.4–0.6 ms against 4.5–12 ms on
 * wasm and a counterfactual step 1.1–1.7 ms against 12 ms, once a run's session is open (opening it costs
 * 50–100 ms, once per run and image size).
 */
export function runsOnDevice(net: ExplainableModel): net is ExplainableModel & { model: SwavModel } {
  return net.model !== undefined;
}

export function weightsOf(model: SwavModel): WeightMap {
  return new Map([...model.variables].map(([name, variable]) => [name, { shape: variable.shape, values: variable.dataSync() as Float32Array }]));
}

// Sessions of the one model explained last: a run's explanations reuse them, another run's replace them.
let cache: { model: SwavModel; sessions: Map<string, Promise<OrtModel>> } | undefined;

/** The session for `key` (graph and device) on `model`, built on first use. */
export function explainSession(model: SwavModel, key: string, build: () => Uint8Array, device: DeviceKind = currentDevice().device): Promise<OrtModel> {
  if (cache?.model !== model) {
    for (const session of cache?.sessions.values() ?? []) void session.then((opened) => opened.dispose(), () => undefined);
    cache = { model, sessions: new Map() };
  }
  const fullKey = `${device}:${key}`;
  let session = cache.sessions.get(fullKey);
  if (!session) {
    session = OrtModel.open(build(), `the ${key} graph (in memory)`, { device, threads: device === 'cpu' ? defaultThreadCount() : undefined });
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
