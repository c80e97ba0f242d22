// The cluster-lens command: the same engine process as the extension, driven over the same protocol.
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { DevicePreference, ExplainMethod, ExplainOptions, ExplainTarget, TrainOptions } from '../protocol/options';
import type { ProgressEvent, WorkRequest, ResultOf } from '../protocol/engine';
import { healthStateLabels } from '../protocol/engine';
import { EngineClient, EngineRequestError } from '../host/engineClient';
import { formatResult } from './format';
import { version } from '../../package.json';

const usage = `cluster-lens ${version}: SwAV clustering and explanations for a folder of images

Usage:
  cluster-lens train <images-dir> --out <run-dir> [--minutes M | --epochs N] [--image-size S]
                     [--prototypes K] [--device auto|gpu|cpu] [--seed N]
                     [--batch-size B] [--width W] [--architecture resnet|plain]
                     [--backbone model.onnx [--backbone-normalization imagenet|none]] [--follow-links] [--resume | --overwrite] [--json]
  cluster-lens index <run-dir> [--device auto|gpu|cpu] [--json]
  cluster-lens neighbours <run-dir> <image> [--k 8] [--exact] [--json]
  cluster-lens evaluate <run-dir> [--baseline] [--json]
  cluster-lens export-onnx <run-dir> --out <model.onnx> [--json]
  cluster-lens explain <run-dir> <image> [--method counterfactual] [--target <cluster>|--pair <image2>|--pair neighbour|--pair augmented]
                       --out <dir> [--grid 7] [--donors 10] [--seed N] [--json]
  cluster-lens evaluate-explanations <run-dir> --methods gradcam,smoothgrad,... [--images N] [--pair neighbour|augmented]
                       [--seed N] [--json]
  cluster-lens evaluate-counterfactuals <run-dir> [--images 20] [--methods counterfactual,counterfactual-mask,counterfactual-pixel]
                       [--grid 7] [--donors 10] [--seed N] [--json]
  cluster-lens umap <run-dir> [--seed N] [--json]
  cluster-lens duplicates <run-dir> [--threshold 0.98] [--json]
  cluster-lens outliers <run-dir> [--k 20] [--limit 100] [--json]
  cluster-lens export <run-dir> --format csv|json|parquet --out <file> [--json]
  cluster-lens fashion-mnist --out <dir> [--idx-dir DIR] [--per-class N] [--split train|test]
  cluster-lens bench [--device auto|gpu|cpu] [--seconds 60] [--quality [--protocol 2k|10k] [--minutes M]] [--python PATH] [--json]

Explanation methods: gradcam, gradcam++, layercam, counterfactual, counterfactual-mask, counterfactual-pixel,
  conditional-occlusion, context-agnostic-occlusion, pairwise-occlusion, interaction-cam-mean, interaction-cam-max,
  input-x-gradient, smoothgrad, averaged-transforms, pixel-invariance, random, attention-rollout (transformer
  backbones). --target explains a cluster (a number,
  or "assigned"); --pair explains the similarity to another image, the nearest neighbour or an augmented view of the
  image itself. counterfactual (the default method) swaps in regions of the target cluster's nearest images;
  counterfactual-mask blends one of them in through a coarse mask; counterfactual-pixel is the seed's pixel search.
  --grid sets their grid's cells per side (7), --donors how many of the target cluster's images they borrow from (10, ≤ 20).

neighbours answers through the run's HNSW index (usearch, saved by index for runs over 50,000 images; approximate,
  well under a millisecond at 1M) and through the exact scan otherwise; --exact forces the scan. The output says which.

--device picks where every command computes (also for explain, index, evaluate…): auto takes a hardware GPU
  (onnxruntime's CUDA provider where installed, else WebGPU over Vulkan/D3D12/Metal) and else the CPU; software
  GPUs (llvmpipe, lavapipe, SwiftShader) only with an explicit --device gpu. The GPU needs its driver and the
  Vulkan loader (libvulkan1), nothing else. Everything computes on onnxruntime: --backend and --runtime went with
  TensorFlow.js.

train's budget: by default training stops once the clusters are stable and the loss is flat, or when a time budget
  that grows with the folder (about a minute per 1,000 images on the CPU) runs out. --minutes M sets that budget
  (M minutes, or less once converged); --epochs N trains exactly N epochs. The result says why it stopped.
  evaluate --baseline also scores k-means on the raw pixels of the same images, the baseline to beat.

--backbone trains on a frozen imported ONNX image backbone (NCHW input): onnxruntime computes its features and
  only the SwAV head and prototypes train; the image size follows the model's when it fixes one (images are resized
  to it). RGB backbones get ImageNet's mean and std by default (what torchvision and DINO exports expect);
  --backbone-normalization none feeds [0, 1] pixels instead. Grey image folders are fed as three channels.

--follow-links trains on images reached through symbolic links that lead out of the images folder (a folder of
  links into a dataset store); without it they are skipped, each listed with its reason. The run keeps the choice.

train writes one run per folder: into a folder that already holds a run it refuses unless given --resume (continue
  it) or --overwrite (replace it: its checkpoint, index and metrics go when the new run saves its first checkpoint).
  A job writing a run folder holds its .lock; a second one is refused with the first one's process id.

With --json the result is one JSON line, the last line on stdout. Progress goes to stderr.
Ctrl-C once cancels (the checkpoint and index are kept); twice stops at once.`;

/** Flags of the TensorFlow.js era, still parsed so that they get a clear message, and what each chose. */
const retiredFlags = {
  backend: 'the TensorFlow.js backend for the light tensor work',
  runtime: 'whether training steps ran on onnxruntime or TensorFlow.js',
};

const flagSpec = {
  out: { type: 'string' },
  minutes: { type: 'string' },
  baseline: { type: 'boolean' },
  protocol: { type: 'string' },
  epochs: { type: 'string' },
  'image-size': { type: 'string' },
  prototypes: { type: 'string' },
  backend: { type: 'string' },
  device: { type: 'string' },
  runtime: { type: 'string' },
  architecture: { type: 'string' },
  seed: { type: 'string' },
  'batch-size': { type: 'string' },
  width: { type: 'string' },
  backbone: { type: 'string' },
  'backbone-normalization': { type: 'string' },
  'follow-links': { type: 'boolean' },
  resume: { type: 'boolean' },
  overwrite: { type: 'boolean' },
  k: { type: 'string' },
  exact: { type: 'boolean' },
  json: { type: 'boolean' },
  'idx-dir': { type: 'string' },
  'per-class': { type: 'string' },
  method: { type: 'string' },
  methods: { type: 'string' },
  target: { type: 'string' },
  pair: { type: 'string' },
  images: { type: 'string' },
  split: { type: 'string' },
  seconds: { type: 'string' },
  quality: { type: 'boolean' },
  python: { type: 'string' },
  grid: { type: 'string' },
  donors: { type: 'string' },
  threshold: { type: 'string' },
  limit: { type: 'string' },
  format: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

class UsageError extends Error {}

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

function number(flags: Record<string, unknown>, name: string): number | undefined {
  const raw = flags[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new UsageError(`--${name} must be a number, got "${String(raw)}"`);
  return value;
}

/** --device for every engine command: the engine reads it from its environment. */
function deviceEnvironment(flags: Record<string, unknown>): NodeJS.ProcessEnv {
  const device = flags.device as string | undefined;
  if (device === undefined) return {};
  if (!['auto', 'gpu', 'cpu'].includes(device)) throw new UsageError(`--device must be auto, gpu or cpu, got "${device}"`);
  return { CLUSTER_LENS_DEVICE: device };
}

function positional(args: string[], position: number, what: string): string {
  const value = args[position];
  if (!value) throw new UsageError(`missing ${what}`);
  return value;
}

function buildRequest(command: string, args: string[], flags: Record<string, unknown>): DistributiveOmit<WorkRequest, 'id'> {
  switch (command) {
    case 'train': {
      const imagesDir = positional(args, 0, '<images-dir>');
      const out = flags.out as string | undefined;
      if (!out) throw new UsageError('train needs --out <run-dir>');
      const options: Partial<TrainOptions> = {
        minutes: number(flags, 'minutes'),
        epochs: number(flags, 'epochs'),
        imageSizePx: number(flags, 'image-size'),
        prototypes: number(flags, 'prototypes'),
        seed: number(flags, 'seed'),
        batchSize: number(flags, 'batch-size'),
        width: number(flags, 'width'),
        device: flags.device as DevicePreference | undefined,
        architecture: flags.architecture as TrainOptions['architecture'] | undefined,
        backbone: typeof flags.backbone === 'string' ? path.resolve(flags.backbone) : undefined,
        backboneNormalization: flags['backbone-normalization'] as TrainOptions['backboneNormalization'] | undefined,
        followLinks: flags['follow-links'] ? true : undefined,
      };
      // An explicit --epochs without --minutes means "train for N epochs", not "N epochs or the default time".
      if (options.epochs !== undefined && options.minutes === undefined) options.minutes = 0;
      if (flags.resume && flags.overwrite) throw new UsageError('--resume continues the run in --out and --overwrite replaces it: pass one of them');
      return { type: 'train', imagesDir: path.resolve(imagesDir), runDir: path.resolve(out), options, resume: Boolean(flags.resume), ...(flags.overwrite ? { overwrite: true } : {}) };
    }
    case 'index':
      return { type: 'index', runDir: path.resolve(positional(args, 0, '<run-dir>')) };
    case 'neighbours':
      return { type: 'neighbours', runDir: path.resolve(positional(args, 0, '<run-dir>')), image: path.resolve(positional(args, 1, '<image>')), k: number(flags, 'k') ?? 8, ...(flags.exact ? { exact: true } : {}) };
    case 'evaluate':
      return { type: 'evaluate', runDir: path.resolve(positional(args, 0, '<run-dir>')), ...(flags.baseline ? { pixelBaseline: true } : {}) };
    case 'export-onnx': {
      const out = flags.out as string | undefined;
      if (!out) throw new UsageError('export-onnx needs --out <model.onnx>');
      return { type: 'exportOnnx', runDir: path.resolve(positional(args, 0, '<run-dir>')), outPath: path.resolve(out) };
    }
    case 'explain': {
      const runDir = path.resolve(positional(args, 0, '<run-dir>'));
      const image = path.resolve(positional(args, 1, '<image>'));
      const method = (flags.method as string | undefined) ?? 'counterfactual';
      const out = flags.out as string | undefined;
      if (!out) throw new UsageError('explain needs --out <dir> for its PNGs');
      return { type: 'explain', runDir, image, method: method as ExplainMethod, target: explainTarget(flags), outDir: path.resolve(out), seed: number(flags, 'seed'), options: counterfactualOptions(flags) };
    }
    case 'evaluate-explanations': {
      const runDir = path.resolve(positional(args, 0, '<run-dir>'));
      const methods = (flags.methods as string | undefined)?.split(',').map((method) => method.trim()).filter(Boolean);
      if (!methods?.length) throw new UsageError('evaluate-explanations needs --methods, e.g. --methods gradcam,smoothgrad');
      const pair = flags.pair as string | undefined;
      if (pair !== undefined && pair !== 'neighbour' && pair !== 'augmented') throw new UsageError('--pair must be neighbour or augmented for evaluate-explanations');
      return { type: 'evaluate-explanations', runDir, methods: methods as ExplainMethod[], images: number(flags, 'images') ?? 10, pair, seed: number(flags, 'seed') };
    }
    case 'evaluate-counterfactuals': {
      const methods = (flags.methods as string | undefined)?.split(',').map((method) => method.trim()).filter(Boolean);
      return { type: 'evaluate-counterfactuals', runDir: path.resolve(positional(args, 0, '<run-dir>')), methods: methods as ExplainMethod[] | undefined, images: number(flags, 'images') ?? 20, seed: number(flags, 'seed'), options: counterfactualOptions(flags) };
    }
    case 'umap':
      return { type: 'layout', layout: 'umap', runDir: path.resolve(positional(args, 0, '<run-dir>')), seed: number(flags, 'seed'), force: flags.seed !== undefined };
    case 'duplicates':
      return { type: 'duplicates', runDir: path.resolve(positional(args, 0, '<run-dir>')), threshold: number(flags, 'threshold') };
    case 'outliers':
      return { type: 'outliers', runDir: path.resolve(positional(args, 0, '<run-dir>')), k: number(flags, 'k'), limit: number(flags, 'limit') };
    case 'export': {
      const format = (flags.format as string | undefined) ?? 'csv';
      if (format !== 'csv' && format !== 'json' && format !== 'parquet') throw new UsageError(`--format must be csv, json or parquet, got "${format}"`);
      const out = flags.out as string | undefined;
      if (!out) throw new UsageError(`export needs --out <file.${format}>`);
      return { type: 'exportAssignments', runDir: path.resolve(positional(args, 0, '<run-dir>')), format, outPath: path.resolve(out) };
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** --grid and --donors: the region and mask counterfactuals' cells per side and donor count (the engine checks them). */
function counterfactualOptions(flags: Record<string, unknown>): Partial<ExplainOptions> {
  return { counterfactualGridCells: number(flags, 'grid'), counterfactualDonors: number(flags, 'donors') };
}

/** --target <cluster>|assigned or --pair <image>|neighbour|augmented; neither leaves the method's default. */
function explainTarget(flags: Record<string, unknown>): ExplainTarget | undefined {
  const target = flags.target as string | undefined;
  const pair = flags.pair as string | undefined;
  if (target !== undefined && pair !== undefined) throw new UsageError('give either --target <cluster> or --pair <image2>, not both');
  if (target !== undefined) {
    if (target === 'assigned') return { kind: 'assigned' };
    const prototype = Number(target);
    if (target.trim() === '' || !Number.isInteger(prototype)) throw new UsageError(`--target must be a cluster number or "assigned", got "${target}"`);
    return { kind: 'prototype', prototype };
  }
  if (pair === 'neighbour') return { kind: 'neighbour', rank: 1 };
  if (pair === 'augmented') return { kind: 'augmented', seed: number(flags, 'seed') };
  if (pair !== undefined) return { kind: 'image', image: path.resolve(pair) };
  return undefined;
}

function progressPrinter(): (event: ProgressEvent) => void {
  let lastPrintMs = 0;
  const interactive = process.stderr.isTTY;
  return (event) => {
    const now = Date.now();
    if (!interactive && now - lastPrintMs < 2000 && event.fraction < 1) return;
    lastPrintMs = now;
    const parts = [`${event.phase.padEnd(6)} ${(event.fraction * 100).toFixed(0).padStart(3)}%`];
    if (event.epoch !== undefined) parts.push(`epoch ${event.epoch}${event.epochs ? `/${event.epochs}` : ''}`);
    if (event.step !== undefined) parts.push(`step ${event.step}`);
    if (event.loss !== undefined) parts.push(`loss ${event.loss.toFixed(4)}`);
    if (event.learningRate !== undefined) parts.push(`lr ${event.learningRate.toExponential(2)}`);
    if (event.imagesPerSecond !== undefined) parts.push(`${event.imagesPerSecond.toFixed(0)} img/s`);
    if (event.device !== undefined && event.phase === 'train') parts.push(`on ${event.device}`);
    if (event.etaSeconds !== undefined) parts.push(`ETA ${Math.round(event.etaSeconds)} s`);
    if (event.health) parts.push(`${healthStateLabels[event.health.state]}${event.health.changedShare !== undefined ? ` (${(100 * event.health.changedShare).toFixed(0)}% moved)` : ''}`);
    if (event.message && event.phase !== 'train') parts.push(event.message);
    const line = parts.join('  ');
    if (interactive) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  };
}

async function runEngineCommand(command: string, args: string[], flags: Record<string, unknown>): Promise<number> {
  const request = buildRequest(command, args, flags);
  const json = Boolean(flags.json);
  const client = new EngineClient({ enginePath: path.join(__dirname, 'engine.js'), restartOnCrash: false, env: deviceEnvironment(flags) });
  const controller = new AbortController();
  let interrupts = 0;
  process.on('SIGINT', () => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write('\nCancelling after this step (Ctrl-C again to stop at once)…\n');
      controller.abort();
    } else {
      process.exit(130);
    }
  });
  const printProgress = progressPrinter();
  try {
    const result = await client.request(request as never, {
      signal: controller.signal,
      onProgress: printProgress,
      onLog: (event) => {
        if (event.level !== 'debug') process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}[${event.level}] ${event.message}\n`);
      },
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else process.stdout.write(`${formatResult(result as ResultOf[keyof ResultOf])}\n`);
    return 0;
  } catch (error) {
    const failure = error instanceof EngineRequestError ? error : new EngineRequestError('INTERNAL', String(error));
    process.stderr.write(`\nError (${failure.code}): ${failure.message}\n`);
    if (json) process.stdout.write(`${JSON.stringify({ error: { code: failure.code, message: failure.message } })}\n`);
    return failure.code === 'CANCELLED' ? 130 : 1;
  } finally {
    await client.dispose();
  }
}

async function fashionMnistCommand(flags: Record<string, unknown>): Promise<number> {
  const { writeFashionMnistPngs } = await import('../engine/data/fashionMnist');
  const out = flags.out as string | undefined;
  if (!out) throw new UsageError('fashion-mnist needs --out <dir>');
  const printProgress = progressPrinter();
  const split = flags.split as string | undefined;
  if (split && split !== 'train' && split !== 'test') throw new UsageError('--split must be train or test');
  const written = await writeFashionMnistPngs({
    idxDir: (flags['idx-dir'] as string | undefined) ?? '/usr/share/datasets/fashion-mnist',
    outDir: path.resolve(out),
    splits: split ? [split as 'train' | 'test'] : undefined,
    perClassLimit: number(flags, 'per-class'),
    onProgress: (done, total) => printProgress({ type: 'progress', id: 0, phase: 'decode', fraction: done / total, message: `${done}/${total} PNGs written` }),
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  process.stdout.write(`Wrote ${written.written} Fashion-MNIST PNGs to ${written.outDir}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: flagSpec, allowPositionals: true, strict: true });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage}\n`);
    return 2;
  }
  const { values: flags, positionals } = parsed;
  for (const [flag, was] of Object.entries(retiredFlags)) {
    if (flags[flag as keyof typeof flags] !== undefined) {
      process.stderr.write(`--${flag} is no longer an option: it chose ${was}, and TensorFlow.js is retired. Every step now runs on onnxruntime; --device auto|gpu|cpu says where.\n`);
      return 2;
    }
  }
  if (flags.version) {
    process.stdout.write(`${version}\n`);
    return 0;
  }
  const [command, ...args] = positionals;
  if (!command || flags.help) {
    process.stdout.write(`${usage}\n`);
    return command || flags.help ? 0 : 2;
  }
  try {
    if (command === 'fashion-mnist') return await fashionMnistCommand(flags);
    if (command === 'bench') {
      const { runBench } = await import('./bench');
      return await runBench({
        json: Boolean(flags.json),
        seconds: number(flags, 'seconds'),
        quality: Boolean(flags.quality),
        protocol: flags.protocol as string | undefined,
        minutes: number(flags, 'minutes'),
        python: flags.python as string | undefined,
        device: flags.device as DevicePreference | undefined,
        idxDir: flags['idx-dir'] as string | undefined,
      });
    }
    return await runEngineCommand(command, args, flags);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`cluster-lens: ${error.message}\n\n${usage}\n`);
      return 2;
    }
    const message = (error as Error).message ?? String(error);
    process.stderr.write(`Error: ${message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
