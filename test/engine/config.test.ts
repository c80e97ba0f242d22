import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adaptedDefaults, defaultTrainOptions, resolveTrainOptions, retiredTrainOptions, smallImageCrops, timeBudgetMinutes } from '../../src/engine/config';
import type { TrainOptions } from '../../src/protocol/options';

test('defaults adapt to the device: the GPU recipe on a hardware GPU, the defaults on the CPU', () => {
  const gpu = resolveTrainOptions({}, { gpu: true });
  const wasm = resolveTrainOptions({}, { gpu: false });
  assert.ok(gpu.batchSize > wasm.batchSize);
  assert.ok(gpu.imageSizePx > wasm.imageSizePx);
  assert.equal(wasm.batchSize, defaultTrainOptions.batchSize);
  assert.equal(wasm.imageSizePx, defaultTrainOptions.imageSizePx);
  // A ResNet-18-sized backbone and more prototypes on the GPU.
  assert.equal(gpu.width, 64);
  assert.deepEqual(gpu.blocksPerStage, [2, 2, 2, 2]);
  assert.ok(gpu.batchSize >= 256 && gpu.prototypes > wasm.prototypes && gpu.imageSizePx >= 96);
  assert.equal(wasm.width, defaultTrainOptions.width);
});

test('device: auto, gpu and cpu are accepted, anything else names the setting', () => {
  for (const device of ['auto', 'gpu', 'cpu'] as const) assert.equal(resolveTrainOptions({ device }).device, device);
  assert.throws(() => resolveTrainOptions({ device: 'tpu' as never }), /Setting "device" is "tpu"; it must be auto, gpu, cpu/);
});

test('old runs\' backend and trainingRuntime are dropped, not rejected, and leave the rest as given', () => {
  for (const old of [
    { backend: 'wasm', trainingRuntime: 'tfjs' },
    { backend: 'webgpu', trainingRuntime: 'onnxruntime' },
    { backend: 'tensorflow' },
    { trainingRuntime: 'auto' },
    { backend: 'not-a-backend', trainingRuntime: 'not-a-runtime' },
  ]) {
    const partial = { ...old, device: 'cpu', batchSize: 24, imageSizePx: 40 } as unknown as Partial<TrainOptions>;
    const options = resolveTrainOptions(partial, { gpu: false });
    assert.equal('backend' in options, false, JSON.stringify(old));
    assert.equal('trainingRuntime' in options, false, JSON.stringify(old));
    assert.deepEqual([options.device, options.batchSize, options.imageSizePx], ['cpu', 24, 40]);
    // What is left resolves exactly as the same options without the retired ones.
    assert.deepEqual(options, resolveTrainOptions({ device: 'cpu', batchSize: 24, imageSizePx: 40 }, { gpu: false }));
    // The caller's object is not changed.
    for (const [key, value] of Object.entries(old)) assert.equal((partial as Record<string, unknown>)[key], value);
  }
  assert.deepEqual([...retiredTrainOptions], ['backend', 'trainingRuntime']);
  // Other settings are still checked.
  assert.throws(() => resolveTrainOptions({ backend: 'wasm', batchSize: 1 } as unknown as Partial<TrainOptions>), /Setting "batchSize" is 1/);
});

test('images are never upscaled past their native size, and never below 16 px', () => {
  assert.equal(resolveTrainOptions({}, { gpu: false, nativeImageSizePx: 28 }).imageSizePx, 28);
  assert.equal(resolveTrainOptions({}, { gpu: true, nativeImageSizePx: 500 }).imageSizePx, 128);
  assert.equal(resolveTrainOptions({}, { gpu: false, nativeImageSizePx: 8 }).imageSizePx, 16);
  // The local crops follow the adapted size.
  const options = resolveTrainOptions({}, { gpu: false, nativeImageSizePx: 28 });
  assert.ok(options.localCropSizePx < options.imageSizePx);
});

test('options the caller gives win over adapted defaults', () => {
  const options = resolveTrainOptions({ imageSizePx: 40, batchSize: 16 }, { gpu: true, nativeImageSizePx: 28 });
  assert.equal(options.imageSizePx, 40);
  assert.equal(options.batchSize, 16);
  assert.deepEqual(adaptedDefaults({ gpu: false }), { batchSize: defaultTrainOptions.batchSize, imageSizePx: defaultTrainOptions.imageSizePx });
});

test('budget: by default no epoch cap, a time budget by folder size and device, and a stop once converged', () => {
  const small = resolveTrainOptions({}, { gpu: false, imageCount: 2000 });
  assert.equal(small.epochs, 0);
  assert.equal(small.stopWhenConverged, true);
  assert.equal(small.minutes, 3);
  assert.equal(resolveTrainOptions({}, { gpu: false, imageCount: 10_000 }).minutes, 11);
  assert.equal(resolveTrainOptions({}, { gpu: false, imageCount: 10 }).minutes, 2);
  assert.ok(timeBudgetMinutes(10_000, true) < timeBudgetMinutes(10_000, false));
  assert.equal(timeBudgetMinutes(1e7, false), 60);
  // --minutes alone: that many minutes, or less once converged, and no epoch cap.
  const minutes = resolveTrainOptions({ minutes: 3 }, { gpu: false, imageCount: 50_000 });
  assert.deepEqual([minutes.minutes, minutes.epochs, minutes.stopWhenConverged], [3, 0, true]);
  // --epochs: exactly that many.
  const epochs = resolveTrainOptions({ epochs: 5, minutes: 0 });
  assert.deepEqual([epochs.epochs, epochs.minutes, epochs.stopWhenConverged], [5, 0, false]);
  assert.equal(resolveTrainOptions({ epochs: 5, stopWhenConverged: true }).stopWhenConverged, true);
  assert.throws(() => resolveTrainOptions({ epochs: 0, minutes: 0 }), /Setting "minutes" is 0; it must be above 0 when epochs is 0/);
  // A frozen backbone's head trains for a known number of epochs.
  assert.equal(resolveTrainOptions({ backbone: '/models/b.onnx' }).epochs, 30);
});

test('small images (32 px and under) get crops that keep more of them, and two local crops; larger ones keep SwAV\'s', () => {
  const small = resolveTrainOptions({}, { gpu: false, nativeImageSizePx: 28 });
  assert.deepEqual([small.globalCropScale, small.localCropScale, small.localCrops], [smallImageCrops.globalCropScale, smallImageCrops.localCropScale, 2]);
  const large = resolveTrainOptions({}, { gpu: false, nativeImageSizePx: 200 });
  assert.deepEqual([large.globalCropScale, large.localCropScale, large.localCrops], [defaultTrainOptions.globalCropScale, defaultTrainOptions.localCropScale, defaultTrainOptions.localCrops]);
  assert.equal(resolveTrainOptions({ localCrops: 4 }, { gpu: false, nativeImageSizePx: 28 }).localCrops, 4);
});

test('the prototypes stay frozen for the first epoch, at most 100 steps', () => {
  assert.equal(resolveTrainOptions({}, { gpu: false, imageCount: 1000 }).freezePrototypesSteps, 15);
  assert.equal(resolveTrainOptions({ batchSize: 100 }, { gpu: false, imageCount: 1000 }).freezePrototypesSteps, 10);
  assert.equal(resolveTrainOptions({}, { gpu: false, imageCount: 60_000 }).freezePrototypesSteps, 100);
  assert.equal(resolveTrainOptions({ freezePrototypesSteps: 7 }, { gpu: false, imageCount: 1000 }).freezePrototypesSteps, 7);
  assert.equal(resolveTrainOptions({}).freezePrototypesSteps, defaultTrainOptions.freezePrototypesSteps);
});
