// The engine's work thread: takes typed requests, runs one job at a time, and emits events.
// It runs tensor work synchronously, so the process's main thread (main.ts) relays and keeps the heartbeat.
import type { EngineEvent, EngineResult, ProgressEvent, WorkRequest } from '../protocol/engine';
import type { MessagePort } from 'node:worker_threads';
import { isEngineRequest } from '../protocol/engine';
import { EngineError, toErrorEvent } from './errors';
import { evaluateRun } from './jobs/evaluate';
import { exportOnnx } from './jobs/exportOnnx';
import { explainImage } from './jobs/explain';
import { evaluateCounterfactuals } from './jobs/evaluateCounterfactuals';
import { evaluateExplanations } from './jobs/evaluateExplanations';
import { runOverview } from './index/runQueries';
import { findNeighbours, indexRun } from './jobs/indexQueries';
import { computeUmap, exportAssignments, findDuplicates, findOutliers, writeMapPoints } from './index/curate';
import { isFrozenRun } from './frozen/backboneFile';
import { trainFrozenBackbone } from './jobs/trainFrozen';
import type { JobContext } from './jobContext';
import { throttleProgress } from './progressThrottle';
import { train } from './jobs/train';
import { withRunLock } from './runLock';
import { readManifest } from './runFolder';
import { currentDevice, useDevice } from './runtime/device';

const progressIntervalMs = 200;

let port: MessagePort | undefined;

function send(event: EngineEvent): void {
  port?.postMessage(event);
}

const pending: { request: WorkRequest; controller: AbortController }[] = [];
const controllers = new Map<number, AbortController>();
let running = false;

function contextFor(id: number, controller: AbortController): JobContext & { flushProgress(): void } {
  const throttle = throttleProgress((update) => send({ type: 'progress', id, device: currentDevice().label, ...update } satisfies ProgressEvent), progressIntervalMs);
  return {
    signal: controller.signal,
    progress: throttle.progress,
    flushProgress: throttle.flush,
    log(level, message) {
      send({ type: 'log', id, level, message });
    },
  };
}

async function execute(request: WorkRequest, context: JobContext): Promise<EngineResult> {
  // One device for all of a job's compute; a train request may name its own, the others take the engine's.
  const deviceFree = ['overview', 'exportOnnx', 'layout', 'mapPoints', 'duplicates', 'outliers', 'exportAssignments'];
  if (!deviceFree.includes(request.type)) await useDevice(request.type === 'train' ? request.options?.device : undefined, context.log);
  switch (request.type) {
    case 'train': {
      const job = { imagesDir: request.imagesDir, runDir: request.runDir, options: request.options, resume: request.resume, overwrite: request.overwrite };
      const frozen = Boolean(request.options?.backbone) || (request.resume === true && (await isFrozenRun(request.runDir)));
      return frozen ? trainFrozenBackbone(job, context) : train(job, context);
    }
    case 'index':
      // Rewriting index.bin while a train writes the same run would mix two runs' files.
      // A missing run is reported as such, not created by taking its lock.
      await readManifest(request.runDir);
      return withRunLock(request.runDir, 'index', context.log, () => indexRun(request.runDir, context));
    case 'neighbours':
      return findNeighbours(request.runDir, request.image, request.k, context, { exact: request.exact });
    case 'evaluate':
      return evaluateRun(request.runDir, context, { pixelBaseline: request.pixelBaseline });
    case 'explain':
      return explainImage(request, context);
    case 'evaluate-explanations':
      return evaluateExplanations(request, context);
    case 'evaluate-counterfactuals':
      return evaluateCounterfactuals(request, context);
    case 'overview':
      return { kind: 'overview', overview: await runOverview(request.runDir) };
    case 'exportOnnx':
      return exportOnnx(request.runDir, request.outPath);
    case 'layout':
      return computeUmap(request.runDir, { seed: request.seed, force: request.force }, context);
    case 'mapPoints':
      return writeMapPoints(request.runDir);
    case 'duplicates':
      return findDuplicates(request.runDir, request.threshold, context);
    case 'outliers':
      return findOutliers(request.runDir, request.k, request.limit, context);
    case 'exportAssignments':
      return exportAssignments(request.runDir, request.format, request.outPath, context);
  }
}

async function drain(): Promise<void> {
  if (running) return;
  running = true;
  while (pending.length > 0) {
    const { request, controller } = pending.shift()!;
    const context = contextFor(request.id, controller);
    try {
      if (controller.signal.aborted) throw new EngineError('CANCELLED', 'Cancelled before it started.');
      const result = await execute(request, context);
      context.flushProgress();
      send({ type: 'result', id: request.id, result });
    } catch (error) {
      context.flushProgress();
      send(toErrorEvent(error, request.id));
    } finally {
      controllers.delete(request.id);
    }
  }
  running = false;
}

function handle(message: unknown): void {
  if (!isEngineRequest(message)) {
    const id = typeof (message as { id?: unknown })?.id === 'number' ? (message as { id: number }).id : undefined;
    send(toErrorEvent(new EngineError('BAD_REQUEST', `The engine does not understand this request: ${JSON.stringify(message)?.slice(0, 200)}`), id));
    return;
  }
  switch (message.type) {
    case 'cancel': {
      const controller = controllers.get(message.targetId);
      controller?.abort();
      send({ type: 'result', id: message.id, result: { kind: 'ack', request: 'cancel' } });
      return;
    }
    case 'shutdown': {
      for (const controller of controllers.values()) controller.abort();
      // Let a running job reach its checkpoint before acknowledging.
      const waitForIdle = setInterval(() => {
        if (!running) {
          clearInterval(waitForIdle);
          send({ type: 'result', id: message.id, result: { kind: 'ack', request: 'shutdown' } });
        }
      }, 20);
      return;
    }
    default: {
      const controller = new AbortController();
      controllers.set(message.id, controller);
      pending.push({ request: message, controller });
      void drain();
    }
  }
}

/** Serves requests arriving on `workerPort` until the process ends. */
export function serveRequests(workerPort: MessagePort): void {
  port = workerPort;
  workerPort.on('message', handle);
}
