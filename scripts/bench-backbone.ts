// An imported backbone on the CPU, as a frozen run and its explanations use it: feature throughput (onnxruntime,
// ImageNet-normalised NHWC pixels in, pooled features out) against PyTorch on the same architecture, the backbone
// passes per image a frozen run pays (its bank of views) against embedding every crop every epoch, and the time
// of one Grad-CAM and of one pixel-counterfactual step through the graphs built from the ONNX graph.
//
//   /usr/bin/python3 scripts/onnx/make-fixtures.py --resnet50 tmp      (writes tmp/resnet50.onnx, not committed;
//                                                  --dino-vits16 tmp writes tmp/dino_vits16.onnx)
//   npx tsx scripts/bench-backbone.ts [--model tmp/resnet50.onnx] [--size 224] [--images 64] [--batch 16]
//                                     [--epochs 30] [--minutes 10] [--python /usr/bin/python3] [--json]
// --python measures torchvision's resnet50 (random weights) with torch's CPU threads set to the same count (so only
// with the ResNet-50 model).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { resolveTrainOptions } from '../src/engine/config';
import { bankViews } from '../src/engine/frozen/frozenRun';
import { importedGraphs } from '../src/engine/frozen/explainable';
import { createHeadModel } from '../src/engine/frozen/headTrainer';
import { OrtBackbone } from '../src/engine/frozen/ortBackbone';
import { counterfactual as pixelCounterfactual } from '../src/engine/explain/counterfactual';
import { explainers } from '../src/engine/explain/methods';
import { weightsOf } from '../src/engine/model/model';
import { resolveExplainOptions } from '../src/engine/explain/options';
import { disposeModel } from '../src/engine/model/model';
import { imagenetNormalization, resolveBackboneInput } from '../src/engine/onnx/backboneInput';
import { parseOnnx } from '../src/engine/onnx/graph';
import { cpuThreadCount } from '../src/engine/runtime/threads';
import { createRandom } from '../src/engine/util/random';

const pytorchScript = `
import sys, time, torch, torchvision
torch.set_num_threads(int(sys.argv[1])); size, images, batch = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = torchvision.models.resnet50(weights=None); model.fc = torch.nn.Identity(); model.eval()
x = torch.rand(batch, 3, size, size)
with torch.no_grad():
    model(x)
    best = float('inf')
    for _ in range(2):
        start = time.perf_counter()
        for _ in range(images // batch): model(x)
        best = min(best, time.perf_counter() - start)
print((images // batch) * batch / best)
`;

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      model: { type: 'string', default: 'tmp/resnet50.onnx' },
      size: { type: 'string' },
      images: { type: 'string', default: '64' },
      batch: { type: 'string', default: '16' },
      epochs: { type: 'string', default: '30' },
      minutes: { type: 'string', default: '10' },
      python: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const file = path.resolve(flags.model!);
  if (!existsSync(file)) throw new Error(`${file} does not exist: run /usr/bin/python3 scripts/onnx/make-fixtures.py --resnet50 ${path.dirname(file)} first`);
  const bytes = readFileSync(file);
  const graph = parseOnnx(bytes, file);
  const threads = cpuThreadCount(); // the engine's CPU thread count (CLUSTER_LENS_THREADS overrides it)
  const backbone = await OrtBackbone.fromBytes(bytes, graph, { ...imagenetNormalization, device: 'cpu', threads });
  const sizePx = backbone.input.heightPx ?? Number(flags.size ?? 224);
  const count = Number(flags.images);
  const batch = Number(flags.batch);
  const random = createRandom(1);
  const perImage = sizePx * sizePx * 3;
  const pixels = Float32Array.from({ length: batch * perImage }, () => random.next());

  // Feature throughput: one warm-up batch, then the best of two passes over `count` images.
  let featureDim = (await backbone.features(pixels, batch, sizePx, sizePx, 3)).length / batch;
  let bestMs = Infinity;
  for (let repeat = 0; repeat < 2; repeat++) {
    const startedAt = performance.now();
    for (let done = 0; done < count; done += batch) featureDim = (await backbone.features(pixels, batch, sizePx, sizePx, 3)).length / batch;
    bestMs = Math.min(bestMs, performance.now() - startedAt);
  }
  const imagesPerSecond = (Math.ceil(count / batch) * batch) / (bestMs / 1000);
  let pytorchImagesPerSecond: number | undefined;
  if (flags.python) {
    pytorchImagesPerSecond = Number(execFileSync(flags.python, ['-c', pytorchScript, String(threads), String(sizePx), String(count), String(batch)], { encoding: 'utf8' }).trim().split('\n').at(-1));
  }

  // A frozen run embeds a bank of views once (frozenRun.ts's featureSource) instead of every crop every epoch,
  // fewer when the bank would take over half the time budget.
  const epochs = Number(flags.epochs);
  const options = resolveTrainOptions({ epochs, imageSizePx: sizePx, minutes: Number(flags.minutes) });
  const chosen = bankViews({ epochs, minutes: options.minutes, localCrops: options.localCrops, images: 1000, secondsPerImage: 1 / imagesPerSecond });
  const passes = (views: { global: number; local: number }) => views.global + views.local;
  const perStepViews = (2 + options.localCrops) * epochs;

  // Explanations through the graphs built from the ONNX graph, with a fresh head.
  const head = createHeadModel(featureDim, { projectionHiddenDim: 256, projectionDim: 64, prototypes: 30 }, createRandom(2));
  const graphs = importedGraphs(bytes, graph, resolveBackboneInput(graph, imagenetNormalization), head, () => weightsOf(head));
  const image = pixels.subarray(0, perImage);
  const timed = async (repeats: number, run: () => Promise<unknown>) => {
    const openedAt = performance.now();
    await run(); // builds the graph, probes the backbone, opens the session
    const firstMs = performance.now() - openedAt;
    const startedAt = performance.now();
    for (let i = 0; i < repeats; i++) await run();
    return { firstMs, ms: (performance.now() - startedAt) / repeats };
  };
  const steps = 5;
  const explainOptions = resolveExplainOptions({ counterfactualSteps: steps, counterfactualMargin: 1 });
  // Grad-CAM opens its session on the current device, the CPU unless something chose another.
  const net = { graphs, prototypes: graphs.prototypes, temperature: 0.1 };
  const gradCam = await timed(3, () => explainers.gradcam.explain({ net, image: { pixels: image, sizePx, channels: 3 }, target: { kind: 'prototype', prototype: 1 }, options: explainOptions, seed: 0 }));
  const counterfactual = await timed(1, () => pixelCounterfactual(graphs, image, sizePx, 0.1, 2, explainOptions, undefined, 'cpu'));
  disposeModel(head);
  await backbone.dispose();

  const figures = {
    model: `${path.basename(file)} (${graph.nodes.length} nodes, opset ${graph.opset}), ${sizePx} px, ${featureDim} features`,
    cpu: `${os.cpus()[0]?.model ?? 'unknown'}, onnxruntime threads ${threads}`,
    features_imgs_per_s: Number(imagesPerSecond.toFixed(1)),
    ...(pytorchImagesPerSecond !== undefined ? { pytorch_imgs_per_s: Number(pytorchImagesPerSecond.toFixed(1)), ratio_to_pytorch: Number((imagesPerSecond / pytorchImagesPerSecond).toFixed(2)) } : {}),
    frozen_run_passes_per_image: `${passes(chosen.full)} (full bank, ${epochs} epochs) vs ${perStepViews} embedding every crop every epoch`,
    frozen_run_feature_minutes_per_1000_images: Number(((1000 * passes(chosen.full)) / imagesPerSecond / 60).toFixed(1)),
    frozen_run_with_budget: `${options.minutes} min for 1000 images: ${chosen.views.global} global + ${chosen.views.local} local view(s) per image, ${(((1000 * passes(chosen.views)) / imagesPerSecond / 60)).toFixed(1)} min of features`,
    gradcam_ms: Number(gradCam.ms.toFixed(0)),
    gradcam_first_ms: Number(gradCam.firstMs.toFixed(0)),
    counterfactual_step_ms: Number((counterfactual.ms / (steps + 1)).toFixed(0)),
  };
  process.stdout.write(flags.json ? `${JSON.stringify(figures)}\n` : `${Object.entries(figures).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`);
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
});
