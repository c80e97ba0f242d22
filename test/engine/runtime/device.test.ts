import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { DeviceInfo } from '../../../src/protocol/options';
import { createModel, trainableVariables } from '../../../src/engine/model/model';
import { currentDevice, describeDevice, isSoftwareAdapter, useDevice } from '../../../src/engine/runtime/device';
import { OrtModel, type OrtArray } from '../../../src/engine/runtime/session';
import { buildTrainingGraph, trainingGraphNames as names } from '../../../src/engine/swav/stepGraph';
import { embedWithOnnxRuntime } from '../../../src/engine/index/ortEmbed';
import { createRandom } from '../../../src/engine/util/random';
import { gpuAdapter, skipWithoutGpu } from '../../gpu';
import { tinySpec } from '../model/tinySpec';
import { maxDifference, randomPixels } from '../onnx/helpers';

const root = path.resolve(__dirname, '../../..');
const silent = () => undefined;

test('software adapters are told from hardware by Dawn’s adapter info', () => {
  assert.ok(isSoftwareAdapter({ vendor: 'mesa', architecture: 'software', device: 'llvmpipe', description: 'llvmpipe: Mesa 25.0.7' }));
  assert.ok(isSoftwareAdapter({ vendor: 'google', device: 'SwiftShader Device (Subzero)' }));
  assert.ok(isSoftwareAdapter({ vendor: 'nvidia', isFallbackAdapter: true }));
  assert.ok(!isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', device: '0x2335', description: 'NVIDIA H200' }));
  assert.ok(!isSoftwareAdapter({ vendor: 'amd', architecture: 'rdna-3', description: 'AMD Radeon RX 7900 XTX (RADV NAVI31)' }));
});

test('device cpu opens every session on the CPU and names it', async () => {
  const info = await useDevice('cpu', silent);
  assert.equal(info.device, 'cpu');
  assert.equal(currentDevice().device, 'cpu');
  assert.equal(describeDevice(info), 'cpu');
});

test('auto never takes a software adapter, and its log says why', { skip: skipWithoutGpu }, async () => {
  const lines: string[] = [];
  const info = await useDevice('auto', (_level, message) => lines.push(message));
  if (gpuAdapter && /llvmpipe|lavapipe|swiftshader/i.test(gpuAdapter)) {
    assert.equal(info.device, 'cpu');
    const webgpu = info.skipped.find((rung) => rung.device === 'webgpu');
    assert.match(webgpu?.reason ?? '', /software renderer/);
    assert.ok(lines.some((line) => /^Device: cpu; skipped .*webgpu: the only adapter, .*software renderer/.test(line)), lines.join('\n'));
  } else {
    assert.equal(info.device, 'webgpu', `a hardware adapter (${gpuAdapter}) is taken`);
  }
  await useDevice('cpu', silent);
});

test('an explicit --device gpu without any adapter fails and names the fix', () => {
  // VK_DRIVER_FILES pointing nowhere hides every Vulkan driver from the loader, as on a machine without one.
  const child = spawnSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'index', path.join(root, 'does-not-matter'), '--device', 'gpu'], {
    encoding: 'utf8',
    env: { ...process.env, VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' },
    timeout: 120_000,
  });
  assert.equal(child.status, 1, child.stderr);
  assert.match(child.stderr, /Error \(BACKEND_UNAVAILABLE\): No GPU could be used \(.*webgpu: .*\)\. The GPU needs its driver with Vulkan support and the Vulkan loader \(Debian\/Ubuntu: apt install libvulkan1\).*--device cpu/);
});

/** The SwAV step graph of a tiny network, its feeds, and what it outputs. */
function tinyStep() {
  const batch = 4;
  const spec = tinySpec;
  const model = createModel(spec, createRandom(3));
  const trainable = trainableVariables(model);
  const shapes = new Map([...trainable].map(([name, v]) => [name, v.shape]));
  const graph = buildTrainingGraph(spec, shapes, { batch, globalCrops: 2, globalSizePx: 12, localCrops: 2, localSizePx: 6, queueRows: 0 }, { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3, cropsForAssign: [0, 1] });
  const feeds: Record<string, OrtArray> = {
    [names.globalCrops]: { data: randomPixels(2 * batch, 12, 1, 5), dims: [2 * batch, 12, 12, 1] },
    [names.localCrops]: { data: randomPixels(2 * batch, 6, 1, 6), dims: [2 * batch, 6, 6, 1] },
  };
  for (const name of graph.variables) feeds[name] = { data: trainable.get(name)!.values, dims: shapes.get(name)! };
  const outputs = [names.loss, names.globalEmbedding, ...graph.variables.map(names.gradient)];
  return { graph, feeds, outputs };
}

test('one training step on the GPU gives the CPU’s loss and gradients', { skip: skipWithoutGpu, timeout: 600_000 }, async () => {
  const { graph, feeds, outputs } = tinyStep();
  const results: Record<string, OrtArray>[] = [];
  for (const device of ['cpu', 'webgpu'] as const) {
    const session = await OrtModel.open(graph.bytes, 'training step', { device, threads: 1 });
    assert.equal(session.device, device);
    results.push(await session.run(feeds, outputs));
    await session.dispose();
  }
  const [cpu, gpu] = results;
  assert.ok(Math.abs(cpu[names.loss].data[0] - gpu[names.loss].data[0]) < 1e-4, `loss ${cpu[names.loss].data[0]} (cpu) vs ${gpu[names.loss].data[0]} (webgpu)`);
  assert.ok(maxDifference(cpu[names.globalEmbedding].data, gpu[names.globalEmbedding].data) < 1e-4, 'embeddings');
  for (const name of graph.variables) {
    if (name === 'head.fc1.bias') continue; // BatchNorm follows it: its true gradient is 0, both sides rounding noise
    const scale = Math.max(...Array.from(cpu[names.gradient(name)].data, Math.abs));
    // Relative to the gradient's own scale: the GPU sums in another order (lavapipe's largest gap seen: 2.4e-2).
    const gap = maxDifference(cpu[names.gradient(name)].data, gpu[names.gradient(name)].data) / scale;
    assert.ok(gap < 5e-2, `gradient of ${name}: largest gap ${gap.toExponential(2)} of its scale`);
  }
});

test('embeddings computed for the index on the GPU match the CPU’s', { skip: skipWithoutGpu, timeout: 600_000 }, async () => {
  const model = createModel({ ...tinySpec, channels: 1 }, createRandom(4));
  const count = 6;
  const images = {
    root: '/none',
    records: Array.from({ length: count }, (_, i) => ({ path: `${i}.png`, label: -1, width: 12, height: 12 })),
    labelNames: [],
    skipped: [],
    imageSizePx: 12,
    channels: 1 as const,
    pixels: Uint8Array.from(randomPixels(count, 12, 1, 8), (value) => Math.round(value * 255)),
  };
  const context = { signal: new AbortController().signal, progress: silent, log: silent };
  const embedded: Awaited<ReturnType<typeof embedWithOnnxRuntime>>[] = [];
  let gpu: DeviceInfo | undefined;
  for (const device of ['cpu', 'gpu'] as const) {
    const info = await useDevice(device, silent);
    if (device === 'gpu') gpu = info;
    embedded.push(await embedWithOnnxRuntime(model, images as never, context, [0, 1]));
  }
  await useDevice('cpu', silent);
  assert.equal(embedded[0].device, 'cpu');
  assert.equal(embedded[1].device, 'webgpu');
  assert.ok(gpu?.adapter, 'the adapter is named');
  assert.ok(maxDifference(embedded[0].features.data, embedded[1].features.data) < 1e-4, 'features');
  assert.ok(maxDifference(embedded[0].embeddings.data, embedded[1].embeddings.data) < 1e-4, 'embeddings');
  assert.ok(maxDifference(embedded[0].scores.data, embedded[1].scores.data) < 1e-4, 'prototype scores');
});

test('cluster-lens train --device gpu finishes on a small folder and reports the device and adapter', { skip: skipWithoutGpu, timeout: 600_000 }, () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'cl-gpu-train-'));
  try {
    for (const label of ['1-trouser', '7-sneaker', '8-bag']) {
      mkdirSync(path.join(scratch, 'images', label), { recursive: true });
      for (const file of readdirSync(path.join(root, 'sample', 'fashion-mnist', label)).slice(0, 8)) copyFileSync(path.join(root, 'sample', 'fashion-mnist', label, file), path.join(scratch, 'images', label, file));
    }
    const args = ['train', path.join(scratch, 'images'), '--out', path.join(scratch, 'run'), '--device', 'gpu', '--epochs', '1', '--image-size', '16', '--batch-size', '8', '--width', '4', '--prototypes', '4', '--json'];
    const child = spawnSync(process.execPath, [path.join(root, 'dist', 'cli.js'), ...args], { encoding: 'utf8', timeout: 540_000 });
    assert.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout.trim().split('\n').pop()!);
    assert.equal(result.kind, 'train');
    assert.equal(result.device, 'webgpu');
    for (const retired of ['backend', 'trainingRuntime']) assert.equal(retired in result, false, `no ${retired} in the result`);
    assert.equal(result.steps, 3);
    assert.ok(Number.isFinite(result.finalLoss));
    assert.equal(typeof result.adapter, 'string');
    assert.match(child.stderr, /Device: webgpu \(.+, Vulkan/);
    if (/llvmpipe|lavapipe/i.test(result.adapter)) assert.match(child.stderr, /\[warn\] The GPU adapter .* is a software renderer/);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
