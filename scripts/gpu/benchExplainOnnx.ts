// Times Grad-CAM and the pixel counterfactual through their ONNX gradient graphs on onnxruntime's CPU provider
// and, with --device gpu, on the GPU beside it, on the default backbone (freshly initialised weights).
//   node --import tsx scripts/gpu/benchExplainOnnx.ts [--sizes 64,96] [--repeats 7] [--steps 50] [--device cpu|gpu]
// Each figure is the median of the repeats with the best beside it; "first" includes building and opening the graph.
import path from 'node:path';
import { defaultTrainOptions } from '../../src/engine/config';
import { decodeImage } from '../../src/engine/data/decode';
import { counterfactual } from '../../src/engine/explain/counterfactual';
import type { DeviceKind } from '../../src/protocol/options';
import { explainers } from '../../src/engine/explain/methods';
import { closeExplainSessions, ownExplainable } from '../../src/engine/explain/onDevice';
import { resolveExplainOptions } from '../../src/engine/explain/options';
import { createModel, disposeModel, type ModelSpec } from '../../src/engine/model/model';
import { describeDevice, useDevice } from '../../src/engine/runtime/device';
import { createRandom } from '../../src/engine/util/random';

const flag = (name: string, fallback: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : fallback);

async function timed(repeats: number, run: () => Promise<unknown>): Promise<{ first: number; median: number; best: number }> {
  const times: number[] = [];
  for (let i = 0; i <= repeats; i++) {
    const startedAt = performance.now();
    await run();
    times.push(performance.now() - startedAt);
  }
  const rest = times.slice(1).sort((a, b) => a - b);
  return { first: times[0], median: rest[Math.floor(rest.length / 2)], best: rest[0] };
}

async function main(): Promise<void> {
  const sizes = flag('sizes', '64,96').split(',').map(Number);
  const repeats = Number(flag('repeats', '7'));
  const steps = Number(flag('steps', '50'));
  const cpu = await useDevice('cpu');
  const chosen = flag('device', 'cpu') === 'gpu' ? await useDevice('gpu') : cpu;
  // The CPU first, then the chosen device if it is another; Grad-CAM runs on the device chosen last (useDevice).
  const devices: { kind: DeviceKind; describe: string }[] = [{ kind: 'cpu', describe: describeDevice(cpu) }];
  if (chosen.device !== 'cpu') devices.push({ kind: chosen.device, describe: describeDevice(chosen) });
  console.log(`onnxruntime: ${devices.map((device) => device.describe).join('; ')}; ${repeats} repeats; counterfactual ${steps} steps (never stopping early)`);
  const format = ({ first, median, best }: { first: number; median: number; best: number }, per = 1) => `${(median / per).toFixed(1)} ms (best ${(best / per).toFixed(1)}, first ${(first / per).toFixed(0)})`;
  for (const sizePx of sizes) {
    const d = defaultTrainOptions;
    const spec: ModelSpec = { channels: 3, stemStride: sizePx >= 48 ? 2 : 1, width: d.width, blocksPerStage: d.blocksPerStage, architecture: d.architecture, projectionHiddenDim: d.projectionHiddenDim, projectionDim: d.projectionDim, prototypes: d.prototypes, inputMean: [0.5, 0.5, 0.5], inputStd: [0.25, 0.25, 0.25] };
    const model = createModel(spec, createRandom(0));
    const net = ownExplainable(model, d.temperature);
    const pixels = Float32Array.from(await decodeImage(path.resolve(__dirname, '../../sample/fashion-mnist/7-sneaker/00009.png'), sizePx, 3), (value) => value / 255);
    const image = { pixels, sizePx, channels: 3 };
    const options = resolveExplainOptions({ counterfactualSteps: steps, counterfactualMargin: 1 });
    const rows: [string, string][] = [];
    for (const device of devices) {
      // Grad-CAM opens its session on the current device.
      await useDevice(device.kind === 'cpu' ? 'cpu' : 'gpu');
      rows.push([`Grad-CAM, onnxruntime ${device.kind}`, format(await timed(repeats, () => explainers.gradcam.explain({ net, image, target: { kind: 'prototype', prototype: 1 }, options, seed: 0 })))]);
      const cfRepeats = Math.max(1, Math.floor(repeats / 3));
      rows.push([`counterfactual per step, onnxruntime ${device.kind}`, format(await timed(cfRepeats, () => counterfactual(net.graphs, pixels, sizePx, d.temperature, 2, options, undefined, device.kind)), steps)]);
    }
    console.log(`\n${sizePx} px, width ${spec.width}, blocks ${spec.blocksPerStage.join('/')}, ${spec.prototypes} prototypes:`);
    for (const [what, figure] of rows) console.log(`  ${what.padEnd(48)} ${figure}`);
    closeExplainSessions();
    disposeModel(model);
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error);
  process.exit(1);
});
