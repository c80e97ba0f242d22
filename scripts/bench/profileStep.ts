// Times one SwAV train step (multi-crop, forward, loss, gradients, Adam) and lists the kernels it spends time in.
// Run: node --import tsx scripts/bench/profileStep.ts [--backend wasm] [--size 28] [--width 16] [--blocks 1,1,1]
//        [--batch 64] [--local 2] [--local-size 16] [--stem 1|2] [--steps 5] [--no-profile] [--calls]
//        [--architecture resnet|plain] [--runtime tfjs|onnxruntime] [--device cpu|gpu|auto] (onnxruntime: the step runs as one ONNX graph; no kernel profile)
// Random pixels stand in for images: the cost of a step does not depend on what the pixels show.

import * as tf from '@tensorflow/tfjs-core';
import type { BackendPreference, TrainingRuntime } from '../../src/protocol/options';
import { describeBackend, initBackend } from '../../src/engine/runtime/tfjs/backend';
import { useDevice } from '../../src/engine/runtime/device';
import type { DevicePreference } from '../../src/protocol/options';
import { resolveTrainOptions } from '../../src/engine/config';
import type { ImageSet } from '../../src/engine/data/decode';
import { createTrainStep } from '../../src/engine/swav/trainer';
import { createRandom } from '../../src/engine/util/random';

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

async function main(): Promise<void> {
  const backend = await initBackend(flag('backend', 'wasm') as BackendPreference, (_level, message) => console.error(message));
  await useDevice(flag('device', 'cpu') as DevicePreference, (_level, message) => console.error(message));
  console.log(`backend: ${describeBackend(backend)}`);
  const sizePx = Number(flag('size', '28'));
  const options = resolveTrainOptions({
    imageSizePx: sizePx,
    width: Number(flag('width', '16')),
    blocksPerStage: flag('blocks', '1,1,1').split(',').map(Number),
    architecture: flag('architecture', 'resnet') as 'resnet' | 'plain',
    batchSize: Number(flag('batch', '64')),
    localCrops: Number(flag('local', '2')),
    localCropSizePx: Number(flag('local-size', '0')),
    projectionHiddenDim: Number(flag('hidden', '256')),
    projectionDim: Number(flag('projection', '64')),
    freezePrototypesSteps: 0,
  });
  const imageCount = Math.max(options.batchSize, 256);
  const random = createRandom(1);
  const images: ImageSet = {
    root: '',
    records: Array.from({ length: imageCount }, (_, i) => ({ path: `${i}.png`, label: -1 })),
    labelNames: [],
    imageSizePx: sizePx,
    channels: 1,
    pixels: Uint8Array.from({ length: imageCount * sizePx * sizePx }, () => random.int(256)),
    skipped: [],
  };
  const stem = flag('stem', '');
  const runtime = flag('runtime', 'tfjs') as TrainingRuntime;
  const step = createTrainStep(options, images, { specOverrides: stem ? { stemStride: Number(stem) as 1 | 2 } : {}, runtime });
  const batch = () => Array.from({ length: options.batchSize }, () => random.int(imageCount));
  await step.run(batch(), 1e-3); // warm-up: XNNPACK builds its operators on first use
  const steps = Number(flag('steps', '5'));
  const tensorsBefore = tf.memory().numTensors;
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    await step.run(batch(), 1e-3);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  console.log(
    `${runtime} step: median ${median.toFixed(0)} ms, best ${times[0].toFixed(0)} ms; ${((options.batchSize * 1000) / median).toFixed(1)} img/s ` +
      `(batch ${options.batchSize}, ${sizePx} px, width ${options.width}, blocks [${options.blocksPerStage}], 2+${options.localCrops} crops of ${sizePx}/${options.localCropSizePx} px)`,
  );
  if (tf.memory().numTensors !== tensorsBefore) console.log(`LEAK: ${tf.memory().numTensors - tensorsBefore} tensors`);
  if (!process.argv.includes('--no-profile') && runtime === 'tfjs') {
    const profile = await tf.profile(async () => {
      await step.run(batch(), 1e-3);
    });
    const byKernel = new Map<string, { ms: number; calls: number }>();
    for (const kernel of profile.kernels) {
      const entry = byKernel.get(kernel.name) ?? { ms: 0, calls: 0 };
      entry.ms += kernel.kernelTimeMs as number;
      entry.calls++;
      byKernel.set(kernel.name, entry);
    }
    const total = [...byKernel.values()].reduce((sum, entry) => sum + entry.ms, 0);
    console.log(`kernels: ${total.toFixed(0)} ms in ${profile.kernels.length} calls`);
    for (const [name, { ms, calls }] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) {
      console.log(`  ${name.padEnd(24)} ${ms.toFixed(1).padStart(8)} ms  ${String(calls).padStart(4)} calls`);
    }
    if (process.argv.includes('--calls')) {
      console.log('slowest calls:');
      for (const kernel of [...profile.kernels].sort((a, b) => (b.kernelTimeMs as number) - (a.kernelTimeMs as number)).slice(0, 40)) {
        console.log(`  ${kernel.name.padEnd(24)} ${(kernel.kernelTimeMs as number).toFixed(1).padStart(7)} ms  ${JSON.stringify(kernel.inputShapes)} -> ${JSON.stringify(kernel.outputShapes)}`);
      }
    }
  }
  step.dispose();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
