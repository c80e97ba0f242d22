// The engine process. Its main thread speaks the protocol over IPC and stays responsive; the work
// thread (worker.ts) runs tensor work, which blocks for whole training steps.
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import type { EngineEvent, EngineRequest, ProgressEvent } from '../protocol/engine';
import { version } from '../../package.json';
import { EngineError, toErrorEvent } from './errors';
import { serveRequests } from './worker';

const heartbeatIntervalMs = 1000;

function send(event: EngineEvent): void {
  if (process.send && process.connected) process.send(event);
}

function runProcess(): void {
  if (!process.send) {
    console.error('The Cluster Lens engine runs as a child process. Use the "cluster-lens" command or the VS Code extension.');
    process.exit(2);
  }
  const inFlight = new Map<number, { latest?: ProgressEvent; lastSentMs: number }>();
  let shuttingDown = false;
  let worker = startWorker();

  function startWorker(): Worker {
    const thread = new Worker(__filename);
    thread.on('message', (event: EngineEvent) => {
      if (event.type === 'progress') {
        const entry = inFlight.get(event.id);
        if (entry) Object.assign(entry, { latest: event, lastSentMs: Date.now() });
      }
      if (event.type === 'result' || event.type === 'error') {
        if (event.id !== undefined) inFlight.delete(event.id);
        if (event.type === 'result' && event.result.kind === 'ack' && event.result.request === 'shutdown') {
          send(event);
          process.exit(0);
        }
      }
      send(event);
    });
    thread.on('error', (error) => send(toErrorEvent(error)));
    thread.on('exit', (code) => {
      if (shuttingDown) process.exit(0);
      // A dead work thread (out of memory, say) fails what it held; the process lives on with a new one.
      for (const id of inFlight.keys()) {
        send(toErrorEvent(new EngineError('ENGINE_CRASHED', `The engine's work thread stopped (code ${code}). Completed checkpoints and indexes are kept; try again.`), id));
      }
      inFlight.clear();
      worker = startWorker();
    });
    return thread;
  }

  // The host hears about running work at least once a second, even mid-step.
  setInterval(() => {
    const now = Date.now();
    for (const entry of inFlight.values()) {
      if (entry.latest && now - entry.lastSentMs >= heartbeatIntervalMs) {
        entry.lastSentMs = now;
        send(entry.latest);
      }
    }
  }, heartbeatIntervalMs / 4).unref();

  process.on('message', (message: EngineRequest) => {
    if (message && typeof message === 'object') {
      if (message.type === 'shutdown') shuttingDown = true;
      else if (message.type !== 'cancel' && typeof message.id === 'number') inFlight.set(message.id, { lastSentMs: Date.now() });
    }
    worker.postMessage(message);
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', pid: process.pid, version });
}

if (isMainThread) {
  runProcess();
} else {
  process.on('uncaughtException', (error) => parentPort?.postMessage(toErrorEvent(error)));
  process.on('unhandledRejection', (error) => parentPort?.postMessage(toErrorEvent(error)));
  serveRequests(parentPort!);
}
