// The one place the engine chooses and starts its TensorFlow.js backend.
// 'auto' walks a ladder from fastest to slowest and records why each rung was skipped;
// an explicit choice that cannot start is an error, never a silent fallback.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// A named import: esbuild drops a bare import of tfjs-backend-cpu (its package.json says it has no
// side effects), and with it the registration of the cpu backend.
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
// The CommonJS build of tfjs-core registers no gradients; without this, `tf.grads` fails for every op.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { BackendName, BackendPreference } from '../../../protocol/options';
import type { LogLevel } from '../../../protocol/engine';
import { EngineError } from '../../errors';
import { registerWasmKernels } from './wasmKernels';
import { defaultThreadCount, findThreadedGlue, threadedGlueFile, withWasmThreads } from './wasmThreads';

export interface SkippedBackend {
  backend: BackendName;
  reason: string;
}

export interface BackendInfo {
  name: BackendName;
  /** Computes on a GPU (tfjs-node-gpu). */
  gpu: boolean;
  /** Rungs of the 'auto' ladder that could not start, fastest first. */
  skipped: SkippedBackend[];
  simd?: boolean;
  threads?: number;
  note?: string;
}

export type BackendLog = (level: LogLevel, message: string) => void;

/** A rung that cannot start: `reason` for the user, `advice` on what to do, `detail` for the log. */
class RungFailure extends Error {
  constructor(
    readonly reason: string,
    readonly advice: string,
    readonly detail?: string,
  ) {
    super(reason);
  }
}

type Rung = () => Promise<Omit<BackendInfo, 'skipped'>>;

// Optional packages are loaded at run time through a require that esbuild cannot see, so that it
// never tries to bundle them; in the bundle this resolves from dist/, i.e. the extension's node_modules.
const optionalRequire = createRequire(__filename);

// No webgpu rung: GPU work runs on onnxruntime's WebGPU provider (device.ts). tfjs-backend-webgpu cannot read
// tensors back synchronously in Node (it needs OffscreenCanvas), and two Dawns in one process crashed on lavapipe.
const ladder: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

const cpuWarning =
  'Using the cpu backend (pure JavaScript): training is thousands of times slower than on wasm. ' +
  'Choose the wasm backend, or install @tensorflow/tfjs-node.';

let current: { preference: BackendPreference; info: Promise<BackendInfo> } | undefined;

/**
 * Starts the backend for `preference` and makes it tfjs's active backend. Calling it again with the
 * same preference returns the first answer without starting anything.
 */
export function initBackend(preference: BackendPreference, log?: BackendLog): Promise<BackendInfo> {
  if (current !== undefined && current.preference === preference) {
    const known = current.info;
    return known.then((info) => {
      // Someone may have switched tfjs to another backend since; switch back rather than lie.
      if (tf.getBackend() === info.name) return copyInfo(info);
      current = undefined;
      return initBackend(preference, log);
    });
  }
  const info = startBackend(preference, log);
  current = { preference, info };
  // A failed start is not cached, so a later call (after an install, say) tries again.
  info.catch(() => {
    if (current?.info === info) current = undefined;
  });
  return info.then(copyInfo);
}

/** One line for the log: "wasm (SIMD, 1 thread); skipped tensorflow: not installed …". */
export function describeBackend(info: BackendInfo): string {
  const traits: string[] = [];
  if (info.simd !== undefined) traits.push(info.simd ? 'SIMD' : 'no SIMD');
  if (info.threads !== undefined) traits.push(`${info.threads} ${info.threads === 1 ? 'thread' : 'threads'}`);
  let text = traits.length > 0 ? `${info.name} (${traits.join(', ')})` : info.name;
  if (info.skipped.length > 0) {
    text += `; skipped ${info.skipped.map((rung) => `${rung.backend}: ${rung.reason}`).join('; ')}`;
  }
  if (info.note !== undefined) text += `. ${info.note}`;
  return text;
}

async function startBackend(preference: BackendPreference, log?: BackendLog): Promise<BackendInfo> {
  if (preference !== 'auto') {
    if (!ladder.includes(preference)) {
      throw new EngineError('BAD_CONFIG', `Unknown backend '${String(preference)}'. Choose one of auto, ${ladder.join(', ')}.`);
    }
    try {
      const info: BackendInfo = { ...(await rungs[preference]()), skipped: [] };
      report(info, log);
      return info;
    } catch (error) {
      const failure = asFailure(error);
      throw new EngineError(
        'BACKEND_UNAVAILABLE',
        `${preference}: ${failure.reason}. ${failure.advice} Or choose the 'auto' backend, which falls back to wasm.`,
        failure.detail,
      );
    }
  }
  const skipped: SkippedBackend[] = [];
  for (const name of ladder) {
    try {
      const info: BackendInfo = { ...(await rungs[name]()), skipped };
      report(info, log);
      return info;
    } catch (error) {
      const failure = asFailure(error);
      skipped.push({ backend: name, reason: failure.reason });
      log?.('debug', `Backend ${name} skipped: ${failure.reason}${failure.detail ? ` (${failure.detail})` : ''}`);
    }
  }
  throw new EngineError(
    'BACKEND_UNAVAILABLE',
    `No TensorFlow.js backend could start: ${skipped.map((rung) => `${rung.backend}: ${rung.reason}`).join('; ')}.`,
  );
}

function report(info: BackendInfo, log?: BackendLog): void {
  log?.('info', `Backend: ${describeBackend(info)}`);
  if (info.name === 'cpu') log?.('warn', cpuWarning);
}

const rungs: Record<BackendName, Rung> = {
  tensorflow: startTensorflow,
  wasm: startWasm,
  cpu: startCpu,
};

async function startTensorflow(): Promise<Omit<BackendInfo, 'skipped'>> {
  // The GPU build first: where CUDA is present it is by far the fastest.
  const packages = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];
  const failures: RungFailure[] = [];
  for (const packageName of packages) {
    try {
      loadOptional(packageName, `npm install ${packageName}`);
      adoptBackend('tensorflow', packageName);
      await activate('tensorflow', `${packageName} loaded but its backend did not start`);
      return { name: 'tensorflow', gpu: packageName.endsWith('-gpu'), note: `native TensorFlow through ${packageName}` };
    } catch (error) {
      failures.push(asFailure(error));
    }
  }
  // A package that is present but broken says more than one that is simply missing.
  const broken = failures.find((failure) => !failure.reason.startsWith('not installed'));
  if (broken !== undefined) throw broken;
  throw new RungFailure(
    'not installed: npm install @tensorflow/tfjs-node',
    'Install @tensorflow/tfjs-node (or @tensorflow/tfjs-node-gpu, with CUDA 11.2 and cuDNN 8.1) beside the extension.',
  );
}

async function startWasm(): Promise<Omit<BackendInfo, 'skipped'>> {
  const directory = wasmDirectory();
  setWasmPaths(directory + path.sep);
  registerWasmKernels();
  const threads = defaultThreadCount();
  let note: string | undefined;
  if (tf.findBackend('wasm') !== null) {
    // Already started in this process (a switch back from cpu, say): it keeps the threads it started with.
    await activateWasm();
    note = wasmNote;
  } else if (threads <= 1) {
    note = process.env.CLUSTER_LENS_THREADS ? 'single-threaded, as CLUSTER_LENS_THREADS asks' : 'single-threaded: this machine has one core';
    await activateWasm();
  } else {
    const glue = findThreadedGlue(directory, (request) => optionalRequire.resolve(request));
    if (glue === undefined) {
      note = `single-threaded: the threaded build's ${threadedGlueFile} is missing beside the .wasm binaries`;
      await activateWasm();
    } else {
      try {
        await withWasmThreads(threads, glue, activateWasm);
      } catch (error) {
        note = `single-threaded: the threaded build did not start (${asFailure(error).reason})`;
        await activateWasm();
      }
    }
  }
  return {
    name: 'wasm',
    gpu: false,
    simd: (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean,
    threads: getThreadsCount(),
    note: (wasmNote = note),
  };
}

/** Why the running wasm backend is single-threaded, when it is. */
let wasmNote: string | undefined;

/** tf.setBackend('wasm'), then drops the handlers emscripten's start-up leaves behind. */
async function activateWasm(): Promise<void> {
  const before = new Set(processHandlers().map((handler) => handler.listener));
  try {
    await activate('wasm', 'the wasm backend did not start');
  } finally {
    // Emscripten's start-up adds handlers that rethrow every uncaught error and rejection, which
    // would kill the engine process before its own handlers could report the error.
    for (const { event, listener } of processHandlers()) {
      if (!before.has(listener) && /\bthrow\b/.test(String(listener))) {
        (process as NodeJS.EventEmitter).removeListener(event, listener);
      }
    }
  }
}

async function startCpu(): Promise<Omit<BackendInfo, 'skipped'>> {
  await activate('cpu', 'the cpu backend did not start');
  return { name: 'cpu', gpu: false, note: `pure JavaScript (tfjs-backend-cpu ${version_cpu}): thousands of times slower than wasm for training` };
}

type Listener = (...args: unknown[]) => void;

function processHandlers(): { event: string; listener: Listener }[] {
  return ['uncaughtException', 'unhandledRejection'].flatMap((event) =>
    process.listeners(event as 'uncaughtException').map((listener) => ({ event, listener: listener as Listener })),
  );
}

/** The folder of the .wasm binaries: beside the bundle, or in the installed package when run from source. */
function wasmDirectory(): string {
  if (fs.existsSync(path.join(__dirname, 'tfjs-backend-wasm-simd.wasm'))) return __dirname;
  let packaged: string;
  try {
    packaged = path.dirname(optionalRequire.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  } catch (error) {
    throw new RungFailure(
      `binaries not found beside ${__dirname} or in @tensorflow/tfjs-backend-wasm`,
      'Reinstall the extension; its dist folder should hold the tfjs-backend-wasm*.wasm files.',
      errorText(error),
    );
  }
  return packaged;
}

/**
 * A package loaded from node_modules registers its backend with the tfjs-core it finds there. The engine's
 * bundle carries its own tfjs-core, so copy the backend's factory and kernels across; run from source, both
 * are the same module and there is nothing to do.
 */
function adoptBackend(name: BackendName, packageName: string): void {
  const packageRequire = createRequire(optionalRequire.resolve(packageName));
  let theirs: typeof tf;
  try {
    theirs = packageRequire('@tensorflow/tfjs-core') as typeof tf;
  } catch {
    return;
  }
  if (theirs === tf || tf.findBackendFactory(name) !== null) return;
  const factory = theirs.findBackendFactory(name);
  if (factory === null) return;
  tf.registerBackend(name, factory);
  for (const kernel of theirs.getKernelsForBackend(name)) {
    if (tf.getKernel(kernel.kernelName, name) === undefined) tf.registerKernel(kernel);
  }
}

/** Loads an optional package, telling "not installed" apart from "installed but broken". */
function loadOptional(packageName: string, install: string): unknown {
  try {
    optionalRequire.resolve(packageName);
  } catch {
    throw new RungFailure(`not installed: ${install}`, `Run ${install} beside the extension.`);
  }
  try {
    return optionalRequire(packageName);
  } catch (error) {
    throw new RungFailure(
      `${packageName} is installed but failed to load: ${firstLine(error)}`,
      `Reinstall ${packageName}, or remove it to let the engine fall back.`,
      errorText(error),
    );
  }
}

/** tf.setBackend, with the warnings tfjs prints on a failed start captured as the reason. */
async function activate(name: BackendName, failure: string, advice = 'See the log for the error.'): Promise<void> {
  if (tf.findBackendFactory(name) === null) {
    throw new RungFailure(`${failure}: no ${name} backend registered`, advice);
  }
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...parts: unknown[]) => warnings.push(parts.map(String).join(' '));
  let started: boolean;
  try {
    started = await tf.setBackend(name);
  } catch (error) {
    throw new RungFailure(`${failure}: ${firstLine(error)}`, advice, errorText(error));
  } finally {
    console.warn = warn;
  }
  if (started) {
    // Nothing went wrong: let the warnings through as they would have been.
    for (const line of warnings) warn(line);
    return;
  }
  const cause = warnings.find((line) => !line.startsWith('Initialization of backend'));
  throw new RungFailure(cause ? `${failure}: ${cause.split('\n')[0]}` : failure, advice, warnings.join('\n') || undefined);
}

function asFailure(error: unknown): RungFailure {
  if (error instanceof RungFailure) return error;
  return new RungFailure(firstLine(error), 'See the log for the error.', errorText(error));
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : (error as { message?: unknown })?.message ?? error;
  return String(message).split('\n')[0];
}

function errorText(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

function copyInfo(info: BackendInfo): BackendInfo {
  return { ...info, skipped: info.skipped.map((rung) => ({ ...rung })) };
}
