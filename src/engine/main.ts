// The engine process: reads typed requests over IPC, runs one job at a time, and emits events.
import type { EngineEvent, EngineResult, ProgressEvent, WorkRequest } from '../protocol';
import { isEngineRequest } from '../protocol';
import { evaluateRun } from './analysis/evaluate';
import { EngineError, toErrorEvent } from './errors';
import { findNeighbours, indexRun } from './index/runQueries';
import type { JobContext } from './jobContext';
import { train } from './swav/trainer';
import { version } from '../../package.json';

const progressIntervalMs = 200;
const heartbeatIntervalMs = 1000;

function send(event: EngineEvent): void {
  if (process.send && process.connected) process.send(event);
}

const pending: { request: WorkRequest; controller: AbortController }[] = [];
const controllers = new Map<number, AbortController>();
let running = false;

function contextFor(id: number, controller: AbortController): JobContext & { stop(): void } {
  let lastSentMs = 0;
  let lastPhase = '';
  let latest: ProgressEvent | undefined;
  // While the event loop is free, the host hears from us at least once a second.
  const heartbeat = setInterval(() => {
    if (latest && Date.now() - lastSentMs >= heartbeatIntervalMs) {
      lastSentMs = Date.now();
      send(latest);
    }
  }, heartbeatIntervalMs);
  return {
    signal: controller.signal,
    progress(update) {
      latest = { type: 'progress', id, ...update };
      const now = Date.now();
      if (now - lastSentMs >= progressIntervalMs || update.phase !== lastPhase || update.fraction >= 1) {
        lastSentMs = now;
        lastPhase = update.phase;
        send(latest);
      }
    },
    log(level, message) {
      send({ type: 'log', id, level, message });
    },
    stop() {
      clearInterval(heartbeat);
    },
  };
}

async function execute(request: WorkRequest, context: JobContext): Promise<EngineResult> {
  switch (request.type) {
    case 'train':
      return train({ imagesDir: request.imagesDir, runDir: request.runDir, options: request.options, resume: request.resume }, context);
    case 'index':
      return indexRun(request.runDir, context);
    case 'neighbours':
      return findNeighbours(request.runDir, request.image, request.k, context);
    case 'evaluate':
      return evaluateRun(request.runDir, context);
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
      send({ type: 'result', id: request.id, result });
    } catch (error) {
      send(toErrorEvent(error, request.id));
    } finally {
      context.stop();
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
      send({ type: 'result', id: message.id, result: { kind: 'ack', request: 'shutdown' } });
      // Let a running job reach its checkpoint before leaving.
      const waitForIdle = setInterval(() => {
        if (!running) {
          clearInterval(waitForIdle);
          process.disconnect?.();
          process.exit(0);
        }
      }, 50);
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

if (!process.send) {
  console.error('The Cluster Lens engine runs as a child process. Use the "cluster-lens" command or the VS Code extension.');
  process.exit(2);
}
process.on('message', handle);
process.on('disconnect', () => process.exit(0));
process.on('uncaughtException', (error) => {
  send(toErrorEvent(error));
  process.exit(1);
});
process.on('unhandledRejection', (error) => send(toErrorEvent(error)));
send({ type: 'ready', pid: process.pid, version });
