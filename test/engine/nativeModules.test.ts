// A native module that cannot load (a VSIX for another platform, say) gives one clear message and no crash: the
// engine starts, past runs stay browsable, work that needs the module says which module, which platform and what to
// do; without onnxruntime (which every step computes on) training and explanations say so, and past runs still
// open. The built engine (dist/engine.js) runs from a copy
// whose node_modules lacks the hidden packages, as an installed extension without them would.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { EngineClient, EngineRequestError } from '../../src/host/engineClient';
import { silentContext } from '../../src/engine/jobContext';
import { train } from '../../src/engine/jobs/train';
import { tempDir } from '../tempDir';

process.env.CLUSTER_LENS_THREADS ??= '1';
const root = path.resolve(__dirname, '../..');
const here = `${process.platform}-${process.arch}`;
const options = { imageSizePx: 16, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 4, batchSize: 10, localCrops: 0, epochs: 1, minutes: 0 };
let imagesDir: string;
let runDir: string;

before(async () => {
  assert.ok(existsSync(path.join(root, 'dist', 'engine.js')), 'run "node esbuild.mjs" (or npm run build) first');
  imagesDir = tempDir('cl-native-images-');
  for (const [label, fill] of [['light', '#ddd'], ['dark', '#222']] as const) {
    mkdirSync(path.join(imagesDir, label));
    for (let i = 0; i < 6; i++) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="${fill}"/><rect x="${i}" y="${i}" width="6" height="6" fill="#888"/></svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(imagesDir, label, `${i}.png`));
    }
  }
  runDir = path.join(tempDir('cl-native-run-'), 'run');
  await train({ imagesDir, runDir, options }, silentContext());
});

/** dist/ copied (a symlinked bundle would resolve its requires from the checkout), node_modules without `hidden`. */
function installWithout(hidden: string[], target?: string): string {
  const install = tempDir('cl-native-install-');
  cpSync(path.join(root, 'dist'), path.join(install, 'dist'), { recursive: true, filter: (file) => !file.endsWith('.map') });
  if (target) writeFileSync(path.join(install, 'dist', 'target.json'), JSON.stringify({ target }));
  mkdirSync(path.join(install, 'node_modules'));
  for (const entry of readdirSync(path.join(root, 'node_modules'))) {
    if (!hidden.includes(entry)) symlinkSync(path.join(root, 'node_modules', entry), path.join(install, 'node_modules', entry));
  }
  return path.join(install, 'dist', 'engine.js');
}

const failsWith = (code: string, ...patterns: RegExp[]) => (error: EngineRequestError) => {
  assert.equal(error.code, code, error.message);
  for (const pattern of patterns) assert.match(error.message, pattern);
  return true;
};

test('without sharp: the engine starts and browses the run; decoding work names sharp, the platform and npm ci (a checkout)', async () => {
  const client = new EngineClient({ enginePath: installWithout(['sharp', '@img']) });
  try {
    const overview = await client.request({ type: 'overview', runDir });
    assert.equal(overview.overview.assignments.length, 12);
    const neighbours = await client.request({ type: 'neighbours', runDir, image: 'light/0.png', k: 3 });
    assert.equal(neighbours.neighbours.length, 3);
    const pid = client.pid;
    await assert.rejects(
      client.request({ type: 'train', imagesDir, runDir: path.join(tempDir('cl-native-run2-'), 'run'), options }),
      failsWith('NATIVE_MODULE_UNAVAILABLE', /^The native module sharp \(it decodes and writes images\) cannot load on /, new RegExp(here), /npm ci/),
    );
    await assert.rejects(client.request({ type: 'explain', runDir, image: 'dark/1.png', method: 'gradcam' }), failsWith('NATIVE_MODULE_UNAVAILABLE', /sharp/));
    assert.equal(client.pid, pid, 'the same engine process answered every request');
  } finally {
    await client.dispose();
  }
});

test('a VSIX for another platform: the message names the VSIX to install, and no npm command', async () => {
  const client = new EngineClient({ enginePath: installWithout(['sharp', '@img'], 'darwin-arm64') });
  try {
    await assert.rejects(client.request({ type: 'explain', runDir, image: 'dark/1.png', method: 'gradcam' }), (error: EngineRequestError) => {
      assert.equal(error.code, 'NATIVE_MODULE_UNAVAILABLE');
      assert.match(error.message, new RegExp(`built for darwin-arm64, and this machine is ${here}: install cluster-lens-${here}\\.vsix`));
      assert.doesNotMatch(error.message, /npm/);
      return true;
    });
  } finally {
    await client.dispose();
  }
});

test('without onnxruntime: device auto skips its rungs, training and explanations name onnxruntime-node and what to do, and a past run stays browsable', async () => {
  const logs: string[] = [];
  const client = new EngineClient({ enginePath: installWithout(['onnxruntime-node']), onLog: (event) => logs.push(event.message) });
  try {
    const newRun = path.join(tempDir('cl-native-run3-'), 'run');
    // Every training step runs on onnxruntime: there is nothing to fall back on, and the error says what is missing.
    await assert.rejects(
      client.request({ type: 'train', imagesDir, runDir: newRun, options }, { onLog: (event) => logs.push(event.message) }),
      failsWith('NATIVE_MODULE_UNAVAILABLE', new RegExp(`The native module onnxruntime-node .* cannot load on ${here}`), /npm ci|VSIX/),
    );
    assert.ok(!existsSync(path.join(newRun, 'run.json')), 'no run folder from a run that could not start');
    assert.ok(logs.some((line) => /^Device: cpu; skipped cuda: The native module onnxruntime-node .* cannot load/.test(line)), logs.join('\n'));
    assert.ok(!existsSync(path.join(newRun, 'checkpoint.ckpt')), 'no checkpoint from a run that could not train');
    const pid = client.pid;
    // Every explanation method runs as onnxruntime graphs: without the module it is named, with what to do.
    await assert.rejects(
      client.request({ type: 'explain', runDir, image: 'light/2.png', method: 'gradcam' }),
      failsWith('NATIVE_MODULE_UNAVAILABLE', /onnxruntime-node/, /npm ci|VSIX/),
    );
    // The engine stays up and the run trained earlier stays browsable: its overview and its stored neighbours.
    const overview = await client.request({ type: 'overview', runDir });
    assert.equal(overview.overview.paths.length, 12);
    assert.equal(overview.overview.assignments.length, 12);
    const neighbours = await client.request({ type: 'neighbours', runDir, image: 'dark/1.png', k: 3 });
    assert.equal(neighbours.neighbours.length, 3);
    assert.equal(client.pid, pid, 'the same engine process answered every request');
  } finally {
    await client.dispose();
  }
});
