// A run folder has one writer (#26): the lock, a stale lock's takeover, a killed save's temp files, the log never
// written through a link, a fresh train into a used folder, run.json only with the first checkpoint, and a full disk.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, promises as fsp, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { silentContext, type JobContext } from '../../src/engine/jobContext';
import { train } from '../../src/engine/jobs/train';
import { trainFrozenBackbone } from '../../src/engine/jobs/trainFrozen';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { disposeModel } from '../../src/engine/model/model';
import { acquireRunLock, processAlive, runLockPath } from '../../src/engine/runLock';
import type { TrainOptions } from '../../src/protocol/options';
import { tempDir } from '../tempDir';

// 24 images in batches of 8: three steps an epoch.
const options: Partial<TrainOptions> = { imageSizePx: 12, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 6, batchSize: 8, localCrops: 1, localCropSizePx: 8, epochs: 1, minutes: 0, freezePrototypesSteps: 2, device: 'cpu' };
const repositoryRoot = path.resolve(__dirname, '../..');
let imagesDir: string;

before(async () => {
  imagesDir = tempDir('cl-lock-images-');
  for (const [label, draw] of [['squares', (i: number) => `<rect x="${4 + (i % 5)}" y="${4 + (i % 3)}" width="14" height="14" fill="white"/>`], ['stripes', (i: number) => `<rect x="0" y="${i % 7}" width="32" height="6" fill="#888"/>`]] as const) {
    mkdirSync(path.join(imagesDir, label));
    for (let i = 0; i < 12; i++) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32" fill="black"/>${draw(i)}</svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(imagesDir, label, `${i}.png`));
    }
  }
});

/** A context that records the log. */
function logged(signal?: AbortSignal): JobContext & { lines: string[] } {
  const lines: string[] = [];
  return { ...silentContext(signal), log: (_level, message) => void lines.push(message), lines };
}

function code(expected: string, ...patterns: RegExp[]): (error: unknown) => boolean {
  return (error: unknown) => {
    const { code: actual, message } = error as { code?: string; message: string };
    assert.equal(actual, expected, message);
    for (const pattern of patterns) assert.match(message, pattern);
    return true;
  };
}

const escaped = (text: string) => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

async function checkpointEpoch(runDir: string): Promise<{ epoch: number; step: number }> {
  const checkpoint = await loadCheckpoint(path.join(runDir, 'checkpoint.ckpt'));
  disposeModel(checkpoint.model);
  return { epoch: checkpoint.header.epoch, step: checkpoint.header.step };
}

function metricsLines(runDir: string): { step?: number; epoch?: number; marker?: string }[] {
  return readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
}

const leftovers = (runDir: string) => readdirSync(runDir).filter((name) => /\.tmp-\d+-\d+$|^\.lock/.test(name));

/** A child process running `code` (CommonJS, TypeScript modules through tsx) that prints "ready" once set up. */
async function child(code: string): Promise<ChildProcess> {
  const process_ = spawn(process.execPath, ['--import', 'tsx', '-e', code], { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    process_.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    process_.once('exit', (exitCode) => reject(new Error(`the child exited (${exitCode}) before it was ready`)));
  });
  return process_;
}

async function killHard(process_: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => process_.once('exit', resolve));
  process_.kill('SIGKILL');
  await exited;
}

test('run lock: of two trains started together into one folder, one trains and the other is refused with RUN_BUSY naming the holder', async () => {
  const runDir = path.join(tempDir('cl-lock-race-'), 'run');
  const results = await Promise.allSettled([train({ imagesDir, runDir, options, index: false }, silentContext()), train({ imagesDir, runDir, options, index: false }, silentContext())]);
  const fulfilled = results.filter((result) => result.status === 'fulfilled');
  const rejected = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
  assert.equal(fulfilled.length, 1, 'exactly one train succeeds');
  assert.equal(rejected.length, 1);
  code('RUN_BUSY', escaped(runDir), new RegExp(`process ${process.pid}\\b`), /started \d{4}-\d\d-\d\dT/, /\.lock/)(rejected[0].reason);
  assert.deepEqual(await checkpointEpoch(runDir), { epoch: 1, step: 3 });
  assert.equal(metricsLines(runDir).filter((line) => line.step !== undefined).length, 3, "one run's log, not two");
  assert.deepEqual(leftovers(runDir), [], 'the lock is released');
});

test('run lock: another process holding the lock refuses a train with its pid; killed mid-save, its lock is taken over and its temp file removed, with log lines', async () => {
  const runDir = tempDir('cl-lock-child-');
  await train({ imagesDir, runDir, options, index: false }, silentContext());
  const before = readFileSync(path.join(runDir, 'checkpoint.ckpt'));
  // The child takes the lock, then starts an atomic save of the checkpoint that never finishes.
  const holder = await child(`
    const { acquireRunLock } = require('./src/engine/runLock.ts');
    const { replaceFileAtomic } = require('./src/engine/util/atomicFile.ts');
    const fs = require('node:fs');
    const dir = ${JSON.stringify(runDir)};
    acquireRunLock(dir, 'train').then(() => {
      replaceFileAtomic(require('node:path').join(dir, 'checkpoint.ckpt'), (temporary) => {
        fs.writeFileSync(temporary, 'half a checkpoint');
        console.log('ready');
        return new Promise(() => undefined);
      });
    });`);
  try {
    const lock = JSON.parse(readFileSync(runLockPath(runDir), 'utf8')) as { pid: number; startedAt: string };
    assert.equal(lock.pid, holder.pid);
    await assert.rejects(train({ imagesDir, runDir, options: { ...options, epochs: 2 }, resume: true, index: false }, silentContext()), code('RUN_BUSY', new RegExp(`process ${holder.pid}\\b`), escaped(lock.startedAt), escaped(runDir)));
    await killHard(holder);
    assert.equal(processAlive(holder.pid!), false);
    const leftover = readdirSync(runDir).filter((name) => name.startsWith('checkpoint.ckpt.tmp-'));
    assert.equal(leftover.length, 1, 'the killed save left its temp file');
    assert.match(leftover[0], new RegExp(`^checkpoint\\.ckpt\\.tmp-${holder.pid}-\\d+$`));
    assert.deepEqual(readFileSync(path.join(runDir, 'checkpoint.ckpt')), before, 'the killed save did not touch the checkpoint');

    const context = logged();
    const resumed = await train({ imagesDir, runDir, options: { ...options, epochs: 2 }, resume: true, index: false }, context);
    assert.equal(resumed.steps, 6);
    assert.ok(context.lines.some((line) => new RegExp(`Took over the lock of .*process ${holder.pid} .*no longer running`).test(line)), context.lines.join('\n'));
    assert.ok(context.lines.some((line) => line.includes('Removed 1 unfinished save') && line.includes(leftover[0])), context.lines.join('\n'));
    assert.deepEqual(leftovers(runDir), []);
  } finally {
    if (holder.exitCode === null && holder.signalCode === null) await killHard(holder);
  }
});

test('run lock: temp files of live writers are kept, those of dead ones and of this process before the lock go', async () => {
  const runDir = tempDir('cl-lock-tmp-');
  const dead = (await child(`console.log('ready')`)).pid!;
  while (processAlive(dead)) await new Promise((resolve) => setTimeout(resolve, 10));
  const names = {
    dead: `index.bin.tmp-${dead}-${Date.now() - 5000}`,
    ownEarlier: `run.json.tmp-${process.pid}-${Date.now() - 5000}`,
    live: `umap.bin.tmp-${process.ppid}-${Date.now()}`,
    user: 'notes.tmp',
  };
  for (const name of Object.values(names)) writeFileSync(path.join(runDir, name), 'x');
  const context = logged();
  const lock = await acquireRunLock(runDir, 'index', context.log);
  await lock.release();
  assert.deepEqual(readdirSync(runDir).sort(), [names.live, names.user].sort());
  assert.ok(context.lines.some((line) => /Removed 2 unfinished save/.test(line) && line.includes(names.dead) && line.includes(names.ownEarlier)), context.lines.join('\n'));
});

test('run lock: metrics.jsonl is never written through a symbolic link: refused with BAD_RUN, and the file it points to is unchanged', async () => {
  const outside = tempDir('cl-lock-outside-');
  const canary = path.join(outside, 'canary.txt');
  writeFileSync(canary, 'canary\n');
  // Resuming a run whose log is a link.
  const runDir = tempDir('cl-lock-link-');
  await train({ imagesDir, runDir, options, index: false }, silentContext());
  rmSync(path.join(runDir, 'metrics.jsonl'));
  symlinkSync(canary, path.join(runDir, 'metrics.jsonl'));
  await assert.rejects(train({ imagesDir, runDir, options: { ...options, epochs: 2 }, resume: true, index: false }, silentContext()), code('BAD_RUN', escaped(path.join(runDir, 'metrics.jsonl')), /symbolic link/, /Delete/));
  assert.equal(readFileSync(canary, 'utf8'), 'canary\n');
  assert.deepEqual(await checkpointEpoch(runDir), { epoch: 1, step: 3 }, 'the run is unchanged');

  // A link that appears while training (after the checks at the start): the save refuses it, the link is not followed.
  const racedDir = path.join(tempDir('cl-lock-link-race-'), 'run');
  let linked = false;
  const context = {
    ...silentContext(),
    progress: (event: { phase?: string }) => {
      if (event.phase === 'train' && !linked) {
        linked = true;
        symlinkSync(canary, path.join(racedDir, 'metrics.jsonl'));
      }
    },
  };
  await assert.rejects(train({ imagesDir, runDir: racedDir, options, index: false }, context), code('BAD_RUN', escaped(path.join(racedDir, 'metrics.jsonl')), /symbolic link/));
  assert.ok(linked);
  assert.equal(readFileSync(canary, 'utf8'), 'canary\n', 'neither truncated nor appended to');
  assert.deepEqual(leftovers(racedDir), []);
});

test('run lock: a fresh train into a folder holding a run is refused without overwrite, replaces it with overwrite, and starts the log over', async () => {
  const runDir = tempDir('cl-lock-used-');
  await train({ imagesDir, runDir, options, index: false }, silentContext());
  writeFileSync(path.join(runDir, 'metrics.jsonl'), `${readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')}${JSON.stringify({ marker: 'old run' })}\n`);
  writeFileSync(path.join(runDir, 'umap.bin'), 'an old layout');
  const checkpoint = readFileSync(path.join(runDir, 'checkpoint.ckpt'));
  const manifest = readFileSync(path.join(runDir, 'run.json'), 'utf8');

  await assert.rejects(train({ imagesDir, runDir, options: { ...options, seed: 7 }, index: false }, silentContext()), code('RUN_EXISTS', escaped(runDir), /run\.json and checkpoint\.ckpt/, /--overwrite/, /--resume/));
  assert.deepEqual(readFileSync(path.join(runDir, 'checkpoint.ckpt')), checkpoint, 'refused: the checkpoint is untouched');
  assert.equal(readFileSync(path.join(runDir, 'run.json'), 'utf8'), manifest);
  assert.ok(metricsLines(runDir).some((line) => line.marker === 'old run'));

  const context = logged();
  const replaced = await train({ imagesDir, runDir, options: { ...options, seed: 7, epochs: 2 }, index: false, overwrite: true }, context);
  assert.equal(replaced.steps, 6);
  assert.ok(context.lines.some((line) => /Overwriting the run in/.test(line)), context.lines.join('\n'));
  const lines = metricsLines(runDir);
  assert.ok(!lines.some((line) => line.marker === 'old run'), 'the old log is gone');
  assert.deepEqual(lines.filter((line) => line.step !== undefined).map((line) => line.step), [1, 2, 3, 4, 5, 6], "the new run's steps, once each");
  assert.equal(existsSync(path.join(runDir, 'umap.bin')), false, "the old run's layout is gone");
  assert.equal((JSON.parse(readFileSync(path.join(runDir, 'run.json'), 'utf8')) as { options: TrainOptions }).options.seed, 7);
  assert.deepEqual(await checkpointEpoch(runDir), { epoch: 2, step: 6 });
});

test('run lock: run.json and the checkpoint appear together at the first save; a run that fails before it leaves neither (nor its folder)', async () => {
  const runDir = path.join(tempDir('cl-lock-order-'), 'run');
  const seen: { step: number; manifest: boolean; checkpoint: boolean }[] = [];
  const context = {
    ...silentContext(),
    progress: (event: { phase?: string; step?: number }) => {
      if (event.phase === 'train' && event.step) seen.push({ step: event.step, manifest: existsSync(path.join(runDir, 'run.json')), checkpoint: existsSync(path.join(runDir, 'checkpoint.ckpt')) });
    },
  };
  await train({ imagesDir, runDir, options: { ...options, epochs: 2 }, index: false }, context);
  // Steps 1–3 (epoch 1) run before the first checkpoint, saved at the end of epoch 1; steps 4–6 after it.
  assert.ok(seen.some((entry) => entry.step === 2) && seen.some((entry) => entry.step === 5), JSON.stringify(seen));
  for (const entry of seen) {
    const saved = entry.step > 3;
    assert.deepEqual([entry.manifest, entry.checkpoint], [saved, saved], `step ${entry.step}: run.json and the checkpoint ${saved ? 'both there' : 'both absent'}`);
  }

  // Killed before the first checkpoint (here: an error in the first epoch): no run.json claims a run.
  const failedDir = path.join(tempDir('cl-lock-failed-'), 'run');
  const failing = {
    ...silentContext(),
    progress: (event: { phase?: string; step?: number }) => {
      if (event.phase === 'train' && event.step === 2) throw new Error('stopped before the first checkpoint');
    },
  };
  await assert.rejects(train({ imagesDir, runDir: failedDir, options, index: false }, failing), /stopped before the first checkpoint/);
  assert.equal(existsSync(path.join(failedDir, 'run.json')), false);
  assert.equal(existsSync(failedDir), false, 'the folder the lock made is gone again');
});

/** Mounts a tmpfs at `dir` when this process may (root on Linux); false otherwise. */
function mountTmpfs(dir: string, size: string): boolean {
  if (process.platform !== 'linux') return false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Fills the file system holding `dir` until it refuses more (ENOSPC). */
function fillDisk(dir: string): void {
  const chunk = Buffer.alloc(64 * 1024, 1);
  const ballast = path.join(dir, 'ballast');
  for (let i = 0; ; i++) {
    try {
      writeFileSync(`${ballast}-${i}`, chunk);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
      throw error;
    }
  }
  // The last write may have left a partial chunk: a few bytes can still be free, never a checkpoint's worth.
}

test('disk full: a save that runs out of space stops training with DISK_FULL naming the folder and the intact checkpoint; so does the index', async (t) => {
  const mountPoint = tempDir('cl-lock-tmpfs-');
  const onTmpfs = mountTmpfs(mountPoint, '16m');
  // Without a tmpfs (not root, not Linux), the write function fails instead, as a full disk makes it fail.
  const writeFile = fsp.writeFile;
  let full = false;
  const fill = (runDir: string) => {
    full = true;
    if (onTmpfs) fillDisk(path.dirname(runDir));
  };
  if (onTmpfs) t.diagnostic(`a 16 MB tmpfs at ${mountPoint} fills up`);
  else {
    t.diagnostic('mount -t tmpfs is not allowed here: the ENOSPC is injected at fs.promises.writeFile instead');
    fsp.writeFile = (async (file: Parameters<typeof writeFile>[0], ...rest: unknown[]) => {
      if (full && String(file).startsWith(mountPoint)) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${String(file)}'`), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      return (writeFile as (...args: unknown[]) => Promise<void>)(file, ...rest);
    }) as typeof writeFile;
  }
  try {
    // Training: epoch 1's checkpoint is saved, then the disk fills while epoch 2 trains.
    const runDir = path.join(mountPoint, 'run');
    const context = {
      ...silentContext(),
      progress: (event: { phase?: string; epoch?: number; step?: number }) => {
        if (event.phase === 'train' && event.step === 4 && !full) fill(runDir);
      },
    };
    await assert.rejects(
      train({ imagesDir, runDir, options: { ...options, epochs: 3 }, index: false }, context),
      code('DISK_FULL', /The disk is full/, escaped(runDir), /last checkpoint \(epoch 1, step 3\) is intact/, /--resume/),
    );
    assert.deepEqual(await checkpointEpoch(runDir), { epoch: 1, step: 3 }, 'the last checkpoint loads');
    assert.ok(existsSync(path.join(runDir, 'run.json')));
    assert.deepEqual(leftovers(runDir), [], 'no temp file and no lock left behind');
    assert.ok(metricsLines(runDir).length >= 3, 'the log stays whole');

    // Space again: the run resumes from that checkpoint.
    for (const name of readdirSync(mountPoint).filter((name) => name.startsWith('ballast'))) rmSync(path.join(mountPoint, name));
    full = false;
    const resumed = await train({ imagesDir, runDir, options: { ...options, epochs: 2 }, resume: true, index: false }, silentContext());
    assert.equal(resumed.steps, 6);

    // Indexing after training: the checkpoint is saved, and the message says how to index it later.
    const indexedDir = path.join(mountPoint, 'indexed');
    const indexing = {
      ...silentContext(),
      progress: (event: { phase?: string }) => {
        if (event.phase === 'index' && !full) fill(indexedDir);
      },
    };
    await assert.rejects(
      train({ imagesDir, runDir: indexedDir, options }, indexing),
      code('DISK_FULL', /The disk is full/, escaped(indexedDir), /checkpoint \(epoch 1, step 3\) is intact/, escaped(`cluster-lens index ${indexedDir}`)),
    );
    assert.deepEqual(await checkpointEpoch(indexedDir), { epoch: 1, step: 3 });
    assert.equal(existsSync(path.join(indexedDir, 'index.bin')), false);
    assert.deepEqual(leftovers(indexedDir), []);
  } finally {
    fsp.writeFile = writeFile;
    if (onTmpfs) execFileSync('umount', [mountPoint]);
  }
});

test('run lock: a frozen-backbone train holds the lock too, needs overwrite for a used folder, and writes run.json and its backbone copy with the first checkpoint', async () => {
  const frozenOptions: Partial<TrainOptions> = { epochs: 2, minutes: 0, batchSize: 8, prototypes: 4, projectionHiddenDim: 16, projectionDim: 8, localCrops: 1, freezePrototypesSteps: 0, backbone: path.join(repositoryRoot, 'test/fixtures/onnx/resnet_tiny.onnx') };
  const runDir = tempDir('cl-lock-frozen-');
  await train({ imagesDir, runDir, options, index: false }, silentContext());

  const lock = await acquireRunLock(runDir, 'index');
  await assert.rejects(trainFrozenBackbone({ imagesDir, runDir, options: frozenOptions, overwrite: true, index: false }, silentContext()), code('RUN_BUSY', new RegExp(`index in process ${process.pid}\\b`)));
  await lock.release();
  await assert.rejects(trainFrozenBackbone({ imagesDir, runDir, options: frozenOptions, index: false }, silentContext()), code('RUN_EXISTS', escaped(runDir), /--overwrite/));
  assert.equal(existsSync(path.join(runDir, 'backbone.onnx')), false, 'refused before anything is copied');

  const seen: boolean[][] = [];
  const context = {
    ...silentContext(),
    progress: (event: { phase?: string; step?: number; epoch?: number }) => {
      if (event.phase === 'train' && event.step === 1) seen.push(['run.json', 'backbone.onnx'].map((name) => existsSync(path.join(runDir, name))));
    },
  };
  await trainFrozenBackbone({ imagesDir, runDir, options: frozenOptions, overwrite: true, index: false }, context);
  assert.ok(seen.length > 0);
  // The old run's run.json went with the new run's first save, not before: during step 1 the old one is still there.
  assert.deepEqual(seen[0], [true, false], 'the backbone copy is written with the first checkpoint');
  assert.equal((JSON.parse(readFileSync(path.join(runDir, 'run.json'), 'utf8')) as { options: TrainOptions }).options.backbone, frozenOptions.backbone);
  assert.ok(existsSync(path.join(runDir, 'backbone.onnx')));
  assert.deepEqual(metricsLines(runDir).filter((line) => line.step !== undefined).map((line) => line.step), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(leftovers(runDir), []);
});
