// Multi-threaded wasm in Node. tfjs-backend-wasm ships a threaded build (emscripten pthreads over Web Workers and
// a shared WebAssembly.Memory) but never uses it in Node: its feature flag answers "no" there, its loader hands
// the workers blob: URLs, which worker_threads cannot open, and XNNPACK caps its pool at half of `os.cpus()`.
// Emscripten itself supports Node pthreads through worker_threads, so we supply what the loader gets wrong:
// a Worker class that starts our bootstrap (below) and points it at the threaded build's own JavaScript glue,
// and the core count we want. The glue must match the .wasm binary; both come from the same package.

import * as fs from 'node:fs';
import os from 'node:os';
import { cpuThreadCount } from '../threads';
import * as path from 'node:path';
import { Worker as NodeWorker, type TransferListItem } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

export const threadedGlueFile = 'tfjs-backend-wasm-threaded-simd.js';

/**
 * A pthread's worker: the same protocol as emscripten's worker.js (load the module into the shared memory, then
 * run thread entry points), reading the glue from a file path. Kept as a string, so it never depends on how
 * the engine was bundled or minified.
 */
const bootstrapSource = `'use strict';
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
let Module = {};
let initializedJS = false;
const pendingQueues = [];
const printError = (...parts) => fs.writeSync(2, parts.join(' ') + '\\n');
Object.assign(globalThis, {
  self: globalThis,
  require,
  Module,
  location: { href: __filename },
  importScripts: (file) => (0, eval)(fs.readFileSync(file, 'utf8') + '\\n//# sourceURL=' + file),
  postMessage: (message) => parentPort.postMessage(message),
  startWorker: (instance) => { Module = instance; postMessage({ cmd: 'loaded' }); },
});
self.alert = (...parts) => postMessage({ cmd: 'alert', text: parts.join(' '), threadId: Module._pthread_self() });
Module.instantiateWasm = (imports, receiveInstance) => {
  const instance = new WebAssembly.Instance(Module.wasmModule, imports);
  receiveInstance(instance);
  Module.wasmModule = null;
  return instance.exports;
};
parentPort.on('message', (data) => {
  try {
    if (data.cmd === 'load') {
      Module.wasmModule = data.wasmModule;
      for (const handler of data.handlers) Module[handler] = (...args) => postMessage({ cmd: 'callHandler', handler, args });
      Module.wasmMemory = data.wasmMemory;
      Module.buffer = data.wasmMemory.buffer;
      Module.ENVIRONMENT_IS_PTHREAD = true;
      importScripts(data.urlOrBlob);
      WasmBackendModuleThreadedSimd(Module);
    } else if (data.cmd === 'run') {
      Module.__emscripten_thread_init(data.pthread_ptr, 0, 0, 1);
      Module.establishStackSpace();
      Module.PThread.receiveObjectTransfer(data);
      Module.PThread.threadInitTLS();
      if (!initializedJS) {
        for (const queue of pendingQueues.splice(0)) Module.executeNotifiedProxyingQueue(queue);
        initializedJS = true;
      }
      try {
        Module.invokeEntryPoint(data.start_routine, data.arg);
      } catch (error) {
        if (error === 'unwind') return;
        if (!(error instanceof Module.ExitStatus)) throw error;
        if (!Module.keepRuntimeAlive()) Module.__emscripten_thread_exit(error.status);
      }
    } else if (data.cmd === 'cancel') {
      if (Module._pthread_self()) Module.__emscripten_thread_exit(-1);
    } else if (data.cmd === 'processProxyingQueue') {
      if (initializedJS) Module.executeNotifiedProxyingQueue(data.queue);
      else pendingQueues.push(data.queue);
    } else if (data.target !== 'setimmediate' && data.cmd) {
      printError('wasm thread: unknown command ' + data.cmd);
    }
  } catch (error) {
    if (Module.__emscripten_thread_crashed) Module.__emscripten_thread_crashed();
    throw error;
  }
});
`;

/** Where the threaded glue lives: beside the .wasm binaries (the bundle), else in the installed package. */
export function findThreadedGlue(wasmDirectory: string, resolve: (request: string) => string): string | undefined {
  const beside = path.join(wasmDirectory, threadedGlueFile);
  if (fs.existsSync(beside)) return beside;
  try {
    return resolve(`@tensorflow/tfjs-backend-wasm/wasm-out/${threadedGlueFile}`);
  } catch {
    return undefined;
  }
}

/** Threads worth starting here: every core the process may use, at most the 8 workers the build pre-creates. */
export function defaultThreadCount(): number {
  return Math.min(cpuThreadCount(), 8);
}

/**
 * Runs `start` (which must call tf.setBackend('wasm')) with the threaded build enabled for `threads` threads:
 * the flag, the thread count, the Worker class the loader constructs, and the core count XNNPACK divides by two.
 * Everything but the Worker class is put back afterwards; the loader may need more workers later.
 */
export async function withWasmThreads<T>(threads: number, gluePath: string, start: () => Promise<T>): Promise<T> {
  const workers: NodeWorker[] = [];
  class PthreadWorker extends NodeWorker {
    constructor() {
      // The loader passes a blob: URL of its own bootstrap, which worker_threads cannot open; ours reads files.
      super(bootstrapSource, { eval: true });
      workers.push(this);
    }

    override postMessage(message: unknown, transferList?: readonly TransferListItem[]): void {
      const load = message as { cmd?: string; urlOrBlob?: unknown } | null;
      // The loader sends the glue as a Blob of a function's source; the glue file is the same code, self-contained.
      super.postMessage(load?.cmd === 'load' ? { ...load, urlOrBlob: gluePath } : message, transferList);
    }

    // Emscripten refs a worker while it runs a pthread; XNNPACK's threads run for the life of the process, which
    // would then never exit on its own. The main thread blocks while they work, so they need no ref of their own.
    override ref(): void {}
  }
  const scope = globalThis as Record<string, unknown>;
  const previousWorker = Object.getOwnPropertyDescriptor(scope, 'Worker');
  // The loader assigns worker_threads' Worker to the global just before constructing its workers: ignore that.
  Object.defineProperty(scope, 'Worker', { configurable: true, get: () => PthreadWorker, set: () => undefined });
  const originalCpus = os.cpus;
  // XNNPACK's pool is min(requested, cores / 2), the halving meant for hyper-threads; give it what we asked for.
  (os as { cpus: typeof os.cpus }).cpus = () => {
    const cpus = originalCpus();
    return Array.from({ length: Math.max(cpus.length, 2 * threads) }, (_, index) => cpus[index % cpus.length]);
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);
  let succeeded = false;
  try {
    const result = await start();
    succeeded = true;
    return result;
  } finally {
    (os as { cpus: typeof os.cpus }).cpus = originalCpus;
    if (succeeded) {
      Object.defineProperty(scope, 'Worker', { configurable: true, writable: true, enumerable: false, value: PthreadWorker });
    } else {
      if (previousWorker) Object.defineProperty(scope, 'Worker', previousWorker);
      else delete scope.Worker;
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      setThreadsCount(1);
      for (const worker of workers) void worker.terminate();
    }
  }
}
