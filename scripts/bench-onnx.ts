// Embedding throughput: onnxruntime-node (CPU) against the engine's own tfjs eval forward pass, on the
// same network (exported in memory) and the same images. Both produce embeddings and prototype scores
// from NHWC [0, 1] pixels; the ORT figure includes the NHWC → NCHW conversion the index would pay.
//
//   npx tsx scripts/bench-onnx.ts [--run-dir DIR] [--size 64] [--channels 3] [--width 16] [--images 512]
//                                 [--batch 128] [--threads N] [--repeats 3] [--json]
// Without --run-dir it benchmarks a freshly initialised model of the default architecture.
import { parseArgs } from 'node:util';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, initBackend } from '../src/engine/runtime/tfjs/backend';
import { resolveTrainOptions } from '../src/engine/config';
import { checkpointPath, loadCheckpoint } from '../src/engine/model/checkpoint';
import { createModel, disposeModel, forward, type SwavModel } from '../src/engine/model/model';
import { toNchwInput } from '../src/engine/onnx/backboneInput';
import { buildOnnxModel, type WeightMap } from '../src/engine/onnx/export';
import { OrtModel } from '../src/engine/runtime/session';
import { createRandom } from '../src/engine/util/random';

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      'run-dir': { type: 'string' },
      size: { type: 'string' },
      channels: { type: 'string' },
      width: { type: 'string' },
      images: { type: 'string', default: '512' },
      batch: { type: 'string', default: '128' },
      threads: { type: 'string' },
      repeats: { type: 'string', default: '3' },
      json: { type: 'boolean' },
    },
  });
  const backend = await initBackend('wasm');
  let model: SwavModel;
  let sizePx: number;
  if (flags['run-dir']) {
    const checkpoint = await loadCheckpoint(checkpointPath(path.resolve(flags['run-dir'])));
    model = checkpoint.model;
    sizePx = checkpoint.header.options.imageSizePx;
  } else {
    const defaults = resolveTrainOptions({ width: flags.width ? Number(flags.width) : undefined, imageSizePx: flags.size ? Number(flags.size) : undefined });
    const channels = Number(flags.channels ?? 3);
    sizePx = defaults.imageSizePx;
    model = createModel(
      {
        channels,
        stemStride: sizePx >= 48 ? 2 : 1,
        width: defaults.width,
        blocksPerStage: defaults.blocksPerStage,
        projectionHiddenDim: defaults.projectionHiddenDim,
        projectionDim: defaults.projectionDim,
        prototypes: defaults.prototypes,
        inputMean: new Array(channels).fill(0.5),
        inputStd: new Array(channels).fill(0.25),
      },
      createRandom(0),
    );
  }
  const { channels } = model.spec;
  const count = Number(flags.images);
  const batch = Number(flags.batch);
  const repeats = Number(flags.repeats);
  const threads = flags.threads ? Number(flags.threads) : undefined;
  const weights: WeightMap = new Map([...model.variables].map(([name, v]) => [name, { shape: v.shape, values: v.dataSync() as Float32Array }]));
  const onnx = await OrtModel.open(buildOnnxModel(model.spec, weights, { imageSizePx: sizePx }), 'benchmark', { threads });
  const random = createRandom(1);
  const pixels = Float32Array.from({ length: count * sizePx * sizePx * channels }, () => random.next());
  const imageValues = sizePx * sizePx * channels;
  const batches = Array.from({ length: Math.ceil(count / batch) }, (_, i) => [i * batch, Math.min(count, (i + 1) * batch)] as const);
  const identity = { name: 'images', channels, mean: new Array(channels).fill(0), std: new Array(channels).fill(1), featureOutput: 'embedding' };

  const tfjsPass = async (): Promise<Float32Array> => {
    const embeddings = new Float32Array(count * model.spec.projectionDim);
    for (const [start, end] of batches) {
      const images = tf.tensor4d(pixels.subarray(start * imageValues, end * imageValues), [end - start, sizePx, sizePx, channels]);
      const out = forward(model, images, 'eval');
      embeddings.set((await out.embedding.data()) as Float32Array, start * model.spec.projectionDim);
      await out.scores.data();
      tf.dispose([images, out.embedding, out.scores, out.features]);
    }
    return embeddings;
  };
  const ortPass = async (): Promise<Float32Array> => {
    const embeddings = new Float32Array(count * model.spec.projectionDim);
    for (const [start, end] of batches) {
      const data = toNchwInput(pixels.subarray(start * imageValues, end * imageValues), end - start, sizePx, sizePx, channels, identity);
      const out = await onnx.run({ images: { data, dims: [end - start, channels, sizePx, sizePx] } }, ['embedding', 'prototype_scores']);
      embeddings.set(out.embedding.data, start * model.spec.projectionDim);
    }
    return embeddings;
  };
  const timed = async (pass: () => Promise<Float32Array>) => {
    let result = await pass(); // warm-up: kernels, arenas, XNNPACK weight packing
    let bestMs = Infinity;
    for (let r = 0; r < repeats; r++) {
      const startedAt = performance.now();
      result = await pass();
      bestMs = Math.min(bestMs, performance.now() - startedAt);
    }
    return { result, imagesPerSecond: count / (bestMs / 1000) };
  };
  const tfjs = await timed(tfjsPass);
  const ort = await timed(ortPass);
  let maxDifference = 0;
  for (let i = 0; i < tfjs.result.length; i++) maxDifference = Math.max(maxDifference, Math.abs(tfjs.result[i] - ort.result[i]));
  const figures = {
    network: `width ${model.spec.width}, stages [${model.spec.blocksPerStage.join(',')}], ${sizePx} px, ${channels} channel(s)`,
    images: count,
    batch,
    tfjs_backend: describeBackend(backend),
    ort_threads: threads ?? 'default (all cores)',
    tfjs_imgs_per_s: Number(tfjs.imagesPerSecond.toFixed(1)),
    ort_imgs_per_s: Number(ort.imagesPerSecond.toFixed(1)),
    speedup: Number((ort.imagesPerSecond / tfjs.imagesPerSecond).toFixed(2)),
    max_embedding_difference: Number(maxDifference.toExponential(2)),
  };
  process.stdout.write(flags.json ? `${JSON.stringify(figures)}\n` : `${Object.entries(figures).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`);
  await onnx.dispose();
  disposeModel(model);
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
});
