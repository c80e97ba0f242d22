// Times Grad-CAM and the counterfactual on tfjs (wasm) against their ONNX gradient graphs on onnxruntime
// (cpu provider, or --device gpu), on the default backbone; the figures are why explain/onDevice.ts uses the graphs on the CPU too.
//   node --import tsx scripts/gpu/benchExplainOnnx.ts [--sizes 64,96] [--repeats 7] [--steps 50] [--device cpu|gpu]
// Each figure is the median of the repeats with the best beside it; "first" includes building and opening the graph.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { defaultTrainOptions } from '../../src/engine/config';
import { decodeImage } from '../../src/engine/data/decode';
import { classActivationMaps } from '../../src/engine/explain/cam';
import { counterfactual } from '../../src/engine/explain/counterfactual';
import { swavExplainable } from '../../src/engine/explain/network';
import { counterfactualOnDevice } from '../../src/engine/explain/ortCounterfactual';
import { gradCamOnDevice } from '../../src/engine/explain/ortGradCam';
import { resolveExplainOptions } from '../../src/engine/explain/options';
import { createModel, disposeModel, type ModelSpec } from '../../src/engine/model/model';
import { describeDevice, useDevice } from '../../src/engine/runtime/device';
import { describeBackend, initBackend } from '../../src/engine/runtime/tfjs/backend';
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
  const device = await useDevice(flag('device', 'cpu') as 'cpu' | 'gpu');
  const backend = await initBackend('wasm');
  console.log(`tfjs: ${describeBackend(backend)}; onnxruntime: ${describeDevice(device)}; ${repeats} repeats; counterfactual ${steps} steps (never stopping early)`);
  const format = ({ first, median, best }: { first: number; median: number; best: number }, per = 1) => `${(median / per).toFixed(1)} ms (best ${(best / per).toFixed(1)}, first ${(first / per).toFixed(0)})`;
  for (const sizePx of sizes) {
    const d = defaultTrainOptions;
    const spec: ModelSpec = { channels: 3, stemStride: sizePx >= 48 ? 2 : 1, width: d.width, blocksPerStage: d.blocksPerStage, architecture: d.architecture, projectionHiddenDim: d.projectionHiddenDim, projectionDim: d.projectionDim, prototypes: d.prototypes, inputMean: [0.5, 0.5, 0.5], inputStd: [0.25, 0.25, 0.25] };
    const model = createModel(spec, createRandom(0));
    const net = swavExplainable(model, d.temperature);
    const pixels = Float32Array.from(await decodeImage(path.resolve(__dirname, '../../sample/fashion-mnist/7-sneaker/00009.png'), sizePx, 3), (value) => value / 255);
    const image = tf.tensor4d(pixels, [1, sizePx, sizePx, 3]);
    const options = resolveExplainOptions({ counterfactualSteps: steps, counterfactualMargin: 1 });
    const rows: [string, string][] = [];
    rows.push(['Grad-CAM, tfjs wasm', format(await timed(repeats, async () => {
      const { maps, score } = classActivationMaps(net, { kind: 'prototype', prototype: 1 }, image, (_a, g) => tf.mean(g, [1, 2], true));
      maps.dataSync();
      tf.dispose([maps, score]);
    }))]);
    rows.push([`Grad-CAM, onnxruntime ${device.device}`, format(await timed(repeats, () => gradCamOnDevice(model, pixels, sizePx, 1)))]);
    const cfRepeats = Math.max(1, Math.floor(repeats / 3));
    rows.push([`counterfactual per step, tfjs wasm`, format(await timed(cfRepeats, () => counterfactual(net, image, 2, options)), steps)]);
    rows.push([`counterfactual per step, onnxruntime ${device.device}`, format(await timed(cfRepeats, () => counterfactualOnDevice(model, pixels, sizePx, d.temperature, 2, options)), steps)]);
    console.log(`\n${sizePx} px, width ${spec.width}, blocks ${spec.blocksPerStage.join('/')}, ${spec.prototypes} prototypes:`);
    for (const [what, figure] of rows) console.log(`  ${what.padEnd(42)} ${figure}`);
    image.dispose();
    net.dispose();
    disposeModel(model);
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error);
  process.exit(1);
});
