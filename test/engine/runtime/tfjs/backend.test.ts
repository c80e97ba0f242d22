import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type { LogLevel } from '../../../../src/protocol/engine';
import { describeBackend, initBackend } from '../../../../src/engine/runtime/tfjs/backend';
import { EngineError } from '../../../../src/engine/errors';
import { wasmKernelNames } from '../../../../src/engine/runtime/tfjs/wasmKernels';
import { defaultThreadCount } from '../../../../src/engine/runtime/tfjs/wasmThreads';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';

function recorder(): { log: (level: LogLevel, message: string) => void; lines: { level: LogLevel; message: string }[] } {
  const lines: { level: LogLevel; message: string }[] = [];
  return { log: (level, message) => lines.push({ level, message }), lines };
}

async function assertUnavailable(preference: 'tensorflow', pattern: RegExp): Promise<void> {
  await assert.rejects(initBackend(preference), (error: unknown) => {
    assert.ok(error instanceof EngineError);
    assert.equal(error.code, 'BACKEND_UNAVAILABLE');
    assert.match(error.message, pattern);
    return true;
  });
}

// These packages are optional and not installed in this repository.
test('an explicit tensorflow backend that is not installed throws BACKEND_UNAVAILABLE with the reason', async () => {
  await assertUnavailable('tensorflow', /^tensorflow: not installed: npm install @tensorflow\/tfjs-node\b.*'auto'/);
});

function installed(packageName: string): boolean {
  try {
    require.resolve(packageName);
    return true;
  } catch {
    return false;
  }
}

test('webgpu is no tfjs backend any more: GPU work runs on onnxruntime (--device gpu)', async () => {
  await assert.rejects(initBackend('webgpu' as never), /Unknown backend 'webgpu'/);
});

test("'auto' skips the rungs it cannot start, with reasons, and lands on wasm", async () => {
  const handlers = () => process.listeners('unhandledRejection').length + process.listeners('uncaughtException').length;
  const handlersBefore = handlers();
  const { log, lines } = recorder();
  const info = await initBackend('auto', log);
  assert.equal(info.name, 'wasm');
  // The wasm start-up adds handlers that rethrow every error; they must not outlive it to kill the engine.
  assert.equal(handlers(), handlersBefore);
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(
    info.skipped.map((rung) => rung.backend),
    ['tensorflow'],
  );
  assert.match(info.skipped[0].reason, /^not installed: npm install @tensorflow\/tfjs-node/);
  assert.equal(info.simd, true);
  // Every core the process may use (at most 8), through the threaded build and our worker_threads shim.
  assert.equal(info.threads, defaultThreadCount());
  assert.equal(info.threads, getThreadsCount());
  const traits = `wasm (SIMD, ${info.threads} ${info.threads === 1 ? 'thread' : 'threads'})`;
  assert.ok(lines.some((line) => line.level === 'info' && line.message.includes(traits)));
  assert.ok(!lines.some((line) => line.level === 'warn'));
  const description = describeBackend(info);
  assert.ok(description.startsWith(`${traits}; skipped tensorflow: not installed`), description);
});

test('CLUSTER_LENS_THREADS=1 keeps wasm single-threaded and says why; threaded and single-threaded agree', () => {
  const script = `
    const tf = require('@tensorflow/tfjs-core');
    const { initBackend } = require(${JSON.stringify(path.resolve(__dirname, '../../../../src/engine/runtime/tfjs/backend.ts'))});
    (async () => {
      const info = await initBackend('wasm');
      const x = tf.randomNormal([8, 12, 12, 16], 0, 1, 'float32', 1);
      const w = tf.randomNormal([3, 3, 16, 32], 0, 1, 'float32', 2);
      const y = tf.conv2d(x, w, 1, 'same');
      const [dx, dw] = tf.grads((a, b) => tf.sum(tf.square(tf.conv2d(a, b, 2, 'same'))))([x, w]);
      console.log(JSON.stringify({ info, values: [y, dx, dw].map((t) => Array.from(t.dataSync().slice(0, 200))) }));
    })();`;
  const runWith = (threads: string) => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { env: { ...process.env, CLUSTER_LENS_THREADS: threads }, encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    return JSON.parse(child.stdout.trim().split('\n').pop() ?? '') as { info: { threads: number; note?: string }; values: number[][] };
  };
  const single = runWith('1');
  assert.equal(single.info.threads, 1);
  assert.match(single.info.note ?? '', /single-threaded, as CLUSTER_LENS_THREADS asks/);
  const threaded = runWith('2');
  assert.equal(threaded.info.threads, 2);
  assert.equal(threaded.info.note, undefined);
  single.values.forEach((values, i) => values.forEach((v, j) => assert.ok(Math.abs(v - threaded.values[i][j]) <= 1e-4 * Math.max(1, Math.abs(v)), `output ${i}[${j}]`)));
});

test("an explicit 'wasm' starts wasm with our kernels, and a second call is cheap and equal", async () => {
  const first = await initBackend('wasm');
  assert.equal(first.name, 'wasm');
  assert.deepEqual(first.skipped, []);
  assert.equal(tf.getBackend(), 'wasm');
  for (const kernelName of wasmKernelNames) assert.ok(tf.getKernel(kernelName, 'wasm') !== undefined, kernelName);
  const { log, lines } = recorder();
  const second = await initBackend('wasm', log);
  assert.deepEqual(second, first);
  // Cached: nothing was started again, so nothing was logged.
  assert.equal(lines.length, 0);
});

test("an explicit 'cpu' works and warns that it is slow; switching back to wasm works", async () => {
  const { log, lines } = recorder();
  const info = await initBackend('cpu', log);
  assert.equal(info.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.ok(lines.some((line) => line.level === 'warn' && /thousands of times slower/.test(line.message)));
  assert.equal((await initBackend('wasm')).name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
});

test('the reductions and identity we replace on wasm agree with cpu and stay leak-free', async () => {
  const values = Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => Math.sin(i) * 10);
  const compute = () =>
    tf.tidy(() => {
      const x = tf.tensor4d(values, [2, 3, 4, 5]);
      const results = [
        tf.sum(x, [0, 1, 2]),
        tf.sum(x, [1, 2], true),
        tf.mean(x, [0, 1, 2], true),
        tf.mean(x, 1),
        tf.sum(x, 3),
        tf.mean(x),
        tf.sum(tf.cast(x, 'int32'), [0, 1]),
      ];
      return results.map((result) => ({ shape: result.shape, values: Array.from(result.dataSync()) }));
    });
  await tf.setBackend('cpu');
  const expected = compute();
  await tf.setBackend('wasm');
  const actual = compute();
  expected.forEach((reference, index) => {
    assert.deepEqual(actual[index].shape, reference.shape);
    reference.values.forEach((value, i) => assert.ok(Math.abs(actual[index].values[i] - value) <= 1e-4 * Math.max(1, Math.abs(value)), `result ${index}[${i}]`));
  });

  // A clone shares the data: it must outlive the original, and its disposal must free it.
  const tensors = tf.memory().numTensors;
  const buffers = tf.engine().backend.numDataIds();
  const original = tf.tensor1d([1, 2, 3]);
  const copy = tf.clone(original);
  const cast = tf.cast(copy, 'float32');
  original.dispose();
  assert.deepEqual(Array.from(cast.dataSync()), [1, 2, 3]);
  tf.dispose([copy, cast]);
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(tf.engine().backend.numDataIds(), buffers);
});

/** Writes a package that `require` finds through NODE_PATH. */
function fakePackage(root: string, name: string, source: string): void {
  const directory = path.join(root, name);
  mkdirSync(directory, { recursive: true });
  writeFileSync(path.join(directory, 'package.json'), JSON.stringify({ name, version: '0.0.0', main: 'index.js' }));
  writeFileSync(path.join(directory, 'index.js'), source);
}

test('a backend package that is installed but broken is reported with its real error', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'cluster-lens-backend-'));
  try {
    fakePackage(root, '@tensorflow/tfjs-node', "throw new Error('libtensorflow.so.2: cannot open shared object file');");
    // A child process, so that the fake packages and the globals they set stay out of this one.
    const script = `
      const { initBackend } = require(${JSON.stringify(path.resolve(__dirname, '../../../../src/engine/runtime/tfjs/backend.ts'))});
      (async () => {
        const auto = await initBackend('auto');
        const explicit = await initBackend('tensorflow').catch((error) => error);
        console.log(JSON.stringify({ auto, code: explicit.code, message: explicit.message }));
      })();`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
      env: { ...process.env, NODE_PATH: root },
      encoding: 'utf8',
    });
    assert.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout.trim().split('\n').pop() ?? '');
    assert.equal(result.auto.name, 'wasm');
    assert.deepEqual(result.auto.skipped, [
      { backend: 'tensorflow', reason: '@tensorflow/tfjs-node is installed but failed to load: libtensorflow.so.2: cannot open shared object file' },
    ]);
    assert.equal(result.code, 'BACKEND_UNAVAILABLE');
    assert.match(result.message, /^tensorflow: @tensorflow\/tfjs-node is installed but failed to load: libtensorflow/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('means over the batch axis of wide rows stay correct on wasm (XNNPACK pooling only up to 4096 channels)', async () => {
  await initBackend('wasm');
  // Wide pooling once corrupted wasm memory, so that a later, wider mean failed: run them in that order.
  for (const width of [1024, 8192, 16384, 27648]) {
    const values = tf.tidy(() => tf.mean(tf.mul(tf.ones([24, width]), tf.reshape(tf.range(0, 24), [24, 1])), 0).dataSync());
    assert.equal(values.length, width);
    assert.ok(Math.abs(values[0] - 11.5) < 1e-4 && Math.abs(values[width - 1] - 11.5) < 1e-4, `width ${width}: ${values[0]}`);
  }
});
