// The engine as a child process: cancel within a step, resume, bad requests, and a crash.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { ProgressEvent } from '../../src/protocol/engine';
import type { TrainOptions } from '../../src/protocol/options';
import { EngineClient, EngineRequestError } from '../../src/host/engineClient';
import { tempDir } from '../tempDir';

const root = path.resolve(__dirname, '../..');
const enginePath = path.join(root, 'dist', 'engine.js');
const sample = path.join(root, 'sample', 'fashion-mnist');
const tinyOptions = { imageSizePx: 28, width: 4, batchSize: 50, minutes: 0, localCrops: 1 };

test('engine: cancelling stops within a step and leaves checkpoint and index; resume continues', async () => {
  const client = new EngineClient({ enginePath });
  const runDir = path.join(tempDir('cl-engine-'), 'run');
  try {
    const controller = new AbortController();
    let abortedAt = 0;
    const first = await client.request(
      { type: 'train', imagesDir: sample, runDir, options: { ...tinyOptions, epochs: 50 } },
      {
        signal: controller.signal,
        onProgress: (event: ProgressEvent) => {
          if (event.phase !== 'train' || abortedAt > 0 || event.step === undefined || event.step < 3) return;
          abortedAt = event.step!;
          controller.abort();
        },
      },
    );
    assert.equal(first.cancelled, true);
    // The request crosses two processes while the next step runs: it must land by the end of that step.
    assert.ok(first.steps >= abortedAt && first.steps <= abortedAt + 2, `stopped at step ${first.steps}, asked after step ${abortedAt}`);
    assert.ok(existsSync(first.checkpointPath));
    assert.ok(first.indexPath && existsSync(first.indexPath), 'a cancelled run still gets an index');

    const resumed = await client.request({ type: 'train', imagesDir: sample, runDir, options: { epochs: 1 }, resume: true });
    assert.equal(resumed.cancelled, false);
    assert.equal(resumed.steps, 20, 'resume finishes epoch 1 (20 steps of 50) from where it stopped');
    assert.ok(statSync(resumed.checkpointPath).mtimeMs >= statSync(first.checkpointPath).mtimeMs);
  } finally {
    await client.dispose();
  }
});

test('engine: progress arrives at least once a second even when one step takes longer', async () => {
  const client = new EngineClient({ enginePath });
  const runDir = path.join(tempDir('cl-heartbeat-'), 'run');
  try {
    const arrivals: number[] = [];
    // Batch 1000 at 64 px makes single steps of a few seconds on the CPU.
    const result = await client.request(
      { type: 'train', imagesDir: sample, runDir, options: { imageSizePx: 64, width: 8, batchSize: 1000, localCrops: 0, epochs: 1, minutes: 0 } },
      { onProgress: () => arrivals.push(Date.now()) },
    );
    assert.equal(result.steps, 1);
    assert.ok(result.durationMs > 2500, `the step should take longer than the heartbeat, took ${result.durationMs} ms in all`);
    arrivals.push(Date.now());
    const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]);
    assert.ok(Math.max(...gaps) < 1600, `longest gap between progress events ${Math.max(...gaps)} ms`);
  } finally {
    await client.dispose();
  }
});

test('engine: bad requests get clear errors and the engine stays alive', async () => {
  const client = new EngineClient({ enginePath });
  try {
    await assert.rejects(client.request({ type: 'index', runDir: '/nonexistent/run' }), (error: EngineRequestError) => error.code === 'NOT_FOUND' && /\/nonexistent\/run/.test(error.message));
    await assert.rejects(client.request({ type: 'neighbours', runDir: os.tmpdir(), image: 'x.png', k: 3 }), (error: EngineRequestError) => error.code === 'NO_INDEX');
    await assert.rejects(
      client.request({ type: 'train', imagesDir: sample, runDir: path.join(os.tmpdir(), 'cl-bad'), options: { device: 'tpu' as never } }),
      (error: EngineRequestError) => error.code === 'BAD_CONFIG' && /"device"/.test(error.message) && /tpu/.test(error.message),
    );
    // A TensorFlow.js era client's backend and runtime are dropped, not rejected: the error is about the bad setting.
    const oldOptions = { backend: 'tensorflow', trainingRuntime: 'tfjs', device: 'cpu', prototypes: 0 } as unknown as Partial<TrainOptions>;
    await assert.rejects(
      client.request({ type: 'train', imagesDir: sample, runDir: path.join(os.tmpdir(), 'cl-bad'), options: oldOptions }),
      (error: EngineRequestError) => error.code === 'BAD_CONFIG' && /"prototypes"/.test(error.message) && !/backend|runtime/i.test(error.message),
    );
    const pid = client.pid;
    await assert.rejects(client.request({ type: 'evaluate', runDir: '/nonexistent/run' }), (error: EngineRequestError) => error.code === 'NOT_FOUND');
    assert.equal(client.pid, pid, 'the same engine process answered every request');
  } finally {
    await client.dispose();
  }
});

test('engine: a crash rejects the request in flight, is reported once, and the next request starts a fresh engine', async () => {
  const crashes: string[] = [];
  const client = new EngineClient({ enginePath, onCrash: (message) => crashes.push(message) });
  const runDir = path.join(tempDir('cl-crash-'), 'run');
  try {
    let killed = false;
    await assert.rejects(
      client.request(
        { type: 'train', imagesDir: sample, runDir, options: { ...tinyOptions, epochs: 50 } },
        {
          onProgress: (event) => {
            if (event.phase === 'train' && !killed) {
              killed = true;
              process.kill(client.pid!, 'SIGKILL');
            }
          },
        },
      ),
      (error: EngineRequestError) => error.code === 'ENGINE_CRASHED',
    );
    assert.equal(crashes.length, 1);
    await assert.rejects(client.request({ type: 'evaluate', runDir: '/nonexistent/run' }), (error: EngineRequestError) => error.code === 'NOT_FOUND');
  } finally {
    await client.dispose();
  }
});
