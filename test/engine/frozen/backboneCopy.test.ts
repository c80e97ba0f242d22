// The run's copy of an imported backbone (issue #26): used only when it is a plain file whose SHA-256 is the one
// the checkpoint records; a swapped, damaged or linked copy is refused, naming it and saying how to recover.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { frozenBackboneFileName, frozenBackbonePath, readFrozenBackbone, sha256, type BackboneRecord } from '../../../src/engine/frozen/backboneFile';
import { forgetRun } from '../../../src/engine/index/runQueries';
import { silentContext } from '../../../src/engine/jobContext';
import { explainImage } from '../../../src/engine/jobs/explain';
import { exportOnnx } from '../../../src/engine/jobs/exportOnnx';
import { trainFrozenBackbone } from '../../../src/engine/jobs/trainFrozen';
import { EngineError } from '../../../src/engine/errors';
import { decodeModel, encodeModel } from '../../../src/engine/onnx/schema';
import { fixtures } from '../onnx/helpers';
import { tempDir } from '../../tempDir';

process.env.CLUSTER_LENS_THREADS ??= '1';
const scratch = tempDir('cl-backbone-copy-');
const originalBytes = readFileSync(path.join(fixtures, 'resnet_tiny.onnx'));
const record = (original: string): BackboneRecord => ({ path: original, sha256: sha256(originalBytes), featureOutput: 'features', inputMean: [0, 0, 0], inputStd: [1, 1, 1], imageSizePx: 16 });

/** The fixture with one weight changed: still a valid model, not the one trained on. */
function tampered(): Uint8Array {
  const model = decodeModel(originalBytes);
  const weight = model.graph!.initializer!.find((tensor) => tensor.name === 'fc.weight')!;
  const raw = Buffer.from(weight.rawData!);
  raw.writeFloatLE(raw.readFloatLE(0) + 1, 0);
  weight.rawData = raw;
  return encodeModel(model);
}

function assertTampered(error: unknown, copy: string): true {
  assert.ok(error instanceof EngineError, String(error));
  assert.equal(error.code, 'BAD_MODEL', error.message);
  assert.ok(error.message.includes(copy), `names the copy: ${error.message}`);
  assert.match(error.message, /is not the file the run was trained on/);
  assert.match(error.message, /Restore backbone\.onnx .*or train the run again/);
  return true;
}

function runFolder(name: string): { runDir: string; copy: string; original: string } {
  const runDir = path.join(scratch, name);
  mkdirSync(runDir, { recursive: true });
  const original = path.join(scratch, `${name}-original.onnx`);
  writeFileSync(original, originalBytes);
  const copy = frozenBackbonePath(runDir);
  writeFileSync(copy, originalBytes);
  return { runDir, copy, original };
}

test('backbone copy: the matching copy is used; a changed one is refused, naming it, whether a weight or the whole model changed', async () => {
  const { runDir, copy, original } = runFolder('unit');
  assert.equal(path.basename(copy), frozenBackboneFileName);
  const read = await readFrozenBackbone(runDir, record(original));
  assert.deepEqual(Buffer.from(read.bytes), originalBytes);
  assert.equal(read.graph.file, copy);

  writeFileSync(copy, tampered());
  await assert.rejects(readFrozenBackbone(runDir, record(original)), (error) => assertTampered(error, copy));
  writeFileSync(copy, readFileSync(path.join(fixtures, 'conv_mlp_tiny.onnx')));
  await assert.rejects(readFrozenBackbone(runDir, record(original)), (error) => assertTampered(error, copy));
  // A checkpoint whose recorded hash was edited is refused the same way.
  writeFileSync(copy, originalBytes);
  await assert.rejects(readFrozenBackbone(runDir, { ...record(original), sha256: '0'.repeat(64) }), (error) => assertTampered(error, copy));
});

test('backbone copy: a link out of the run folder is refused without being followed; a FIFO is refused at once', { skip: process.platform === 'win32' && 'symlinks and FIFOs need POSIX', timeout: 20_000 }, async () => {
  const { runDir, copy, original } = runFolder('links');
  // The canary: the same bytes (so a hash check alone would pass), outside the run folder, its access time set back.
  const canary = path.join(scratch, 'canary.onnx');
  writeFileSync(canary, originalBytes);
  const longAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
  utimesSync(canary, longAgo, longAgo);
  const atime = statSync(canary).atimeMs;
  rmSync(copy);
  symlinkSync(canary, copy);
  await assert.rejects(readFrozenBackbone(runDir, record(original)), (error) => {
    assert.ok(error instanceof EngineError && error.code === 'BAD_MODEL', String(error));
    assert.ok(error.message.includes(copy), error.message);
    assert.match(error.message, /symbolic link, not a regular file. Replace the link with the file itself/);
    return true;
  });
  assert.equal(statSync(canary).atimeMs, atime, 'the link target was not read');

  rmSync(copy);
  execFileSync('mkfifo', [copy]);
  try {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('reading a FIFO copy hangs')), 3000)));
    await assert.rejects(Promise.race([readFrozenBackbone(runDir, record(original)), hang]), (error) => {
      assert.ok(error instanceof EngineError && error.code === 'BAD_MODEL', String(error));
      assert.match(error.message, /named pipe \(FIFO\), not a regular file/);
      return true;
    });
    clearTimeout(timer);
  } finally {
    try {
      closeSync(openSync(copy, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // no reader was left waiting
    }
  }
});

test('backbone copy: when the copy is missing, the original is used only while its hash matches', async () => {
  const { runDir, copy, original } = runFolder('missing');
  rmSync(copy);
  const read = await readFrozenBackbone(runDir, record(original));
  assert.deepEqual(Buffer.from(read.bytes), originalBytes);
  writeFileSync(original, tampered());
  await assert.rejects(readFrozenBackbone(runDir, record(original)), (error: EngineError) => error.code === 'BAD_CHECKPOINT' && error.message.includes(copy) && /original is gone or changed/.test(error.message));
  rmSync(original);
  await assert.rejects(readFrozenBackbone(runDir, record(original)), (error: EngineError) => error.code === 'BAD_CHECKPOINT' && /Restore backbone\.onnx, or train the run again/.test(error.message));
});

let imagesDir: string;
before(async () => {
  imagesDir = path.join(scratch, 'images');
  for (const label of ['squares', 'stripes']) {
    mkdirSync(path.join(imagesDir, label), { recursive: true });
    for (let i = 0; i < 8; i++) {
      const shape = label === 'squares' ? `<rect x="${4 + (i % 5)}" y="${4 + (i % 3)}" width="14" height="14" fill="white"/>` : `<rect x="0" y="${i % 7}" width="32" height="6" fill="#888"/>`;
      await sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32" fill="black"/>${shape}</svg>`)).png().toFile(path.join(imagesDir, label, `${i}.png`));
    }
  }
});

test('backbone copy: a trained run whose copy was swapped refuses to export or explain, writes nothing, and works again once the copy is restored', async () => {
  const original = path.join(scratch, 'trained-original.onnx');
  copyFileSync(path.join(fixtures, 'resnet_tiny.onnx'), original);
  const runDir = path.join(scratch, 'trained');
  await trainFrozenBackbone({ imagesDir, runDir, options: { backbone: original, epochs: 1, minutes: 0, batchSize: 8, prototypes: 4, projectionHiddenDim: 16, projectionDim: 8, localCrops: 1, freezePrototypesSteps: 0, device: 'cpu' } }, silentContext());
  const copy = frozenBackbonePath(runDir);
  const kept = readFileSync(copy);
  writeFileSync(copy, tampered());
  const out = path.join(scratch, 'exported.onnx');
  try {
    await assert.rejects(exportOnnx(runDir, out), (error) => assertTampered(error, copy));
    assert.equal(existsSync(out), false, 'nothing exported');
    await assert.rejects(explainImage({ runDir, image: 'squares/0.png', method: 'gradcam' }, silentContext()), (error) => assertTampered(error, copy));
  } finally {
    forgetRun(runDir);
  }
  writeFileSync(copy, kept);
  const exported = await exportOnnx(runDir, out);
  assert.ok(existsSync(out) && exported.bytes > 0);
});
