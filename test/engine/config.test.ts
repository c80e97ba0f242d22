import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adaptedDefaults, defaultTrainOptions, resolveTrainOptions } from '../../src/engine/config';

test('defaults adapt to the backend: larger batches and images on a GPU, smaller on pure-JS cpu', () => {
  const gpu = resolveTrainOptions({}, { backend: 'webgpu', gpu: true });
  const wasm = resolveTrainOptions({}, { backend: 'wasm', gpu: false });
  const cpu = resolveTrainOptions({}, { backend: 'cpu', gpu: false });
  assert.ok(gpu.batchSize > wasm.batchSize && wasm.batchSize > cpu.batchSize);
  assert.ok(gpu.imageSizePx > wasm.imageSizePx && wasm.imageSizePx > cpu.imageSizePx);
  assert.equal(wasm.batchSize, defaultTrainOptions.batchSize);
  assert.equal(wasm.imageSizePx, defaultTrainOptions.imageSizePx);
});

test('images are never upscaled past their native size, and never below 16 px', () => {
  assert.equal(resolveTrainOptions({}, { backend: 'wasm', gpu: false, nativeImageSizePx: 28 }).imageSizePx, 28);
  assert.equal(resolveTrainOptions({}, { backend: 'webgpu', gpu: true, nativeImageSizePx: 500 }).imageSizePx, 96);
  assert.equal(resolveTrainOptions({}, { backend: 'wasm', gpu: false, nativeImageSizePx: 8 }).imageSizePx, 16);
  // The local crops follow the adapted size.
  const options = resolveTrainOptions({}, { backend: 'wasm', gpu: false, nativeImageSizePx: 28 });
  assert.ok(options.localCropSizePx < options.imageSizePx);
});

test('options the caller gives win over adapted defaults', () => {
  const options = resolveTrainOptions({ imageSizePx: 40, batchSize: 16 }, { backend: 'webgpu', gpu: true, nativeImageSizePx: 28 });
  assert.equal(options.imageSizePx, 40);
  assert.equal(options.batchSize, 16);
  assert.deepEqual(adaptedDefaults({ backend: 'tensorflow', gpu: false }), { batchSize: defaultTrainOptions.batchSize, imageSizePx: defaultTrainOptions.imageSizePx });
});
