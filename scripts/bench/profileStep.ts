// Times one SwAV train step (multi-crop, forward, loss, gradients in one onnxruntime graph; Adam, the running
// statistics and the queue in the engine) on the chosen device.
// Run: node --import tsx scripts/bench/profileStep.ts [--size 28] [--width 16] [--blocks 1,1,1] [--batch 64]
//        [--local 2] [--local-size 16] [--hidden 256] [--projection 64] [--stem 1|2] [--steps 5]
//        [--architecture resnet|plain] [--device cpu|gpu|auto]
// Random pixels stand in for images: the cost of a step does not depend on what the pixels show.

import { describeDevice, useDevice } from '../../src/engine/runtime/device';
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
  const retired = ['--backend', '--runtime'].filter((name) => process.argv.includes(name));
  if (retired.length > 0) {
    console.error(`${retired.join(' and ')} went with TensorFlow.js: the step always runs on onnxruntime; --device cpu|gpu|auto picks where.`);
    process.exit(2);
  }
  const device = await useDevice(flag('device', 'cpu') as DevicePreference, (_level, message) => console.error(message));
  console.log(`device: ${describeDevice(device)}`);
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
  const step = createTrainStep(options, images, { specOverrides: stem ? { stemStride: Number(stem) as 1 | 2 } : {} });
  const batch = () => Array.from({ length: options.batchSize }, () => random.int(imageCount));
  await step.run(batch(), 1e-3); // warm-up: builds the step's graph and opens its session
  const steps = Number(flag('steps', '5'));
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    await step.run(batch(), 1e-3);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  console.log(
    `step: median ${median.toFixed(0)} ms, best ${times[0].toFixed(0)} ms; ${((options.batchSize * 1000) / median).toFixed(1)} img/s ` +
      `(batch ${options.batchSize}, ${sizePx} px, width ${options.width}, blocks [${options.blocksPerStage}], 2+${options.localCrops} crops of ${sizePx}/${options.localCropSizePx} px)`,
  );
  step.dispose();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
