// `cluster-lens bench`: our training and embedding throughput against the PyTorch reference
// (../shared/reference/swav_torch.py), run one after the other on the same machine and data.
//
// Speed (default): Fashion-MNIST at 28 px, the reference's recipe (width 32, four stages, 2+4 crops of 28 and
// 16 px, batch 256, 30 prototypes), `--seconds` of training for each (default 60), then the embedding speed of
// each on the 10,000 test images. Ours trains on the test images as a folder tree, through the engine like any
// run; the reference trains on the 60,000 training images from the idx files (throughput does not depend on
// which images). The reference runs where a python with torch, sklearn and scipy is found
// (Debian: apt-get install python3-torch python3-sklearn python3-scipy); otherwise its side says why not.
//
// Quality (`--quality`): the product's targets, each a `train` with default options (only the minutes given, so
// the run may stop sooner once converged) and an `evaluate` on the same images: 3 minutes on 2,000 of the test
// images (the first 200 of each class), then 10 minutes on all 10,000. Prints k-means NMI / ARI / ACC and kNN
// beside k-means on the raw pixels of the same images (plain and L2-normalised), and why training stopped.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DevicePreference, TrainOptions } from '../protocol/options';
import type { ProgressEvent, ResultOf, WorkRequest } from '../protocol/engine';
import { EngineClient } from '../host/engineClient';
import { forwardConvMacs, networkLayout } from '../engine/model/layout';

export interface BenchOptions {
  json?: boolean;
  /** Training seconds for each side of the speed comparison (default 60). */
  seconds?: number;
  /** Run the quality protocols instead of the speed comparison. */
  quality?: boolean;
  /** Only this quality protocol (default: both). */
  protocol?: string;
  /** Training minutes for the 10,000-image quality protocol (default 10), or for the one chosen with `protocol`. */
  minutes?: number;
  /** Where Fashion-MNIST's PNG tree is (or is written): <dir>/test/<class>/*.png. */
  dataDir?: string;
  idxDir?: string;
  /** A python with torch, sklearn and scipy; default: the first of CLUSTER_LENS_PYTHON, /usr/bin/python3, python3 that has them. */
  python?: string;
  /** The reference script; default ../shared/reference/swav_torch.py beside the repository. */
  referenceScript?: string;
  /** gpu: the speed comparison runs on the GPU (GPU recipe: batch 1024) and then on the CPU, side by side. */
  device?: DevicePreference;
  /** The engine bundle; default dist/engine.js beside this file's bundle. */
  enginePath?: string;
}

const defaultIdxDir = '/usr/share/datasets/fashion-mnist';
/** The quality protocols: images per class (all when absent), minutes, and the issue's NMI target. */
const qualityProtocols = [
  { name: '2k', perClass: 200, minutes: 3, targetNmi: 0.55 },
  { name: '10k', perClass: undefined, minutes: 10, targetNmi: 0.62 },
] as const;

/** The reference's defaults (swav_torch.py): the recipe both sides train for the speed comparison. */
const referenceRecipe: Partial<TrainOptions> = {
  imageSizePx: 28,
  width: 32,
  blocksPerStage: [1, 1, 1, 1],
  architecture: 'plain', // the reference's network: four conv-conv blocks, no stem, no shortcuts
  projectionHiddenDim: 512,
  projectionDim: 128,
  prototypes: 30,
  localCrops: 4,
  localCropSizePx: 16,
  globalCropScale: [0.35, 1],
  localCropScale: [0.1, 0.35],
  batchSize: 256,
  learningRate: 2e-3,
  freezePrototypesSteps: 200,
  epochs: 100_000,
};

export async function runBench(options: boolean | BenchOptions = {}): Promise<number> {
  const settings: BenchOptions = typeof options === 'boolean' ? { json: options } : options;
  const repositoryRoot = packageRoot(__dirname);
  const dataDir = settings.dataDir ?? path.join(os.tmpdir(), 'cluster-lens-bench', 'fashion-mnist');
  const idxDir = settings.idxDir ?? defaultIdxDir;
  const protocols = qualityProtocols.filter((protocol) => settings.protocol === undefined || protocol.name === settings.protocol);
  if (settings.quality && protocols.length === 0) throw new Error(`No quality protocol "${settings.protocol}"; choose ${qualityProtocols.map((protocol) => protocol.name).join(' or ')}.`);
  const runs = settings.quality
    ? protocols.map((protocol) => ({ device: settings.device ?? 'auto', protocol }))
    : (settings.device === 'gpu' ? ['gpu', 'cpu'] : [settings.device ?? 'auto']).map((device) => ({ device: device as DevicePreference, protocol: undefined }));
  const sides: Record<string, unknown>[] = [];
  for (const { device, protocol } of runs) {
    const client = new EngineClient({ enginePath: settings.enginePath ?? path.join(__dirname, 'engine.js'), restartOnCrash: false, env: { CLUSTER_LENS_DEVICE: device } });
    const runDir = mkdtempSync(path.join(os.tmpdir(), 'cluster-lens-bench-'));
    try {
      if (protocol) {
        const testDir = await ensureTestImages(protocol.perClass ? `${dataDir}-${protocol.name}` : dataDir, idxDir, protocol.perClass);
        const minutes = settings.minutes !== undefined && (protocols.length === 1 || protocol.name === '10k') ? settings.minutes : protocol.minutes;
        sides.push(await qualityRun(client, testDir, runDir, { ...settings, minutes }, protocol));
      } else {
        sides.push(await speedRun(client, await ensureTestImages(dataDir, idxDir), runDir, { ...settings, device }, repositoryRoot));
      }
    } finally {
      await client.dispose();
      rmSync(runDir, { recursive: true, force: true });
    }
  }
  const figures = sides.length === 1 ? sides[0] : { mode: settings.quality ? 'quality-protocols' : 'speed-devices', sides };
  const text = sides.map(formatFigures).join('\n');
  process.stdout.write(settings.json ? `${JSON.stringify(figures)}\n` : `${text}\n`);
  return 0;
}

/** On a GPU both sides train the reference's network at batch 1024, to give the device enough work. */
const gpuBatchSize = 1024;

async function speedRun(client: EngineClient, testDir: string, runDir: string, settings: BenchOptions, repositoryRoot: string): Promise<Record<string, unknown>> {
  const seconds = settings.seconds ?? 60;
  const onGpu = settings.device === 'gpu';
  const batchSize = onGpu ? gpuBatchSize : referenceRecipe.batchSize!;
  log(`ours (--device ${settings.device ?? 'auto'}): training ${seconds} s on ${testDir} (reference recipe: width 32, 4 stages, 2+4 crops, batch ${batchSize})`);
  const trained = await engineRequest(client, {
    type: 'train',
    imagesDir: testDir,
    runDir,
    options: { ...referenceRecipe, batchSize, minutes: seconds / 60, device: settings.device ?? 'auto' },
  });
  const indexed = await engineRequest(client, { type: 'index', runDir });
  const ours = {
    device: trained.device ?? 'cpu',
    adapter: trained.adapter,
    batch_size: batchSize,
    train_imgs_per_s: round(trained.imagesPerSecond),
    steps: trained.steps,
    embed_device: indexed.device ?? 'cpu',
    embed_imgs_per_s: round(indexed.forwardImagesPerSecond ?? indexed.imagesPerSecond),
    index_imgs_per_s: round(indexed.imagesPerSecond),
    macs_per_28px_image: forwardMacs(),
  };
  const reference = await runReference(seconds, settings, repositoryRoot, { cuda: ours.device !== 'cpu', batchSize });
  const figures: Record<string, unknown> = { mode: 'speed', seconds, device: ours.device, adapter: ours.adapter, ours, reference: reference.result ?? { skipped: reference.skipped } };
  if (reference.result) {
    figures.train_ratio = round(ours.train_imgs_per_s / Number(reference.result.imgs_per_s), 3);
    figures.embed_ratio = round(ours.embed_imgs_per_s / Number(reference.result.embed_imgs_per_s), 3);
  }
  return figures;
}

async function qualityRun(client: EngineClient, testDir: string, runDir: string, settings: BenchOptions, protocol: (typeof qualityProtocols)[number]): Promise<Record<string, unknown>> {
  const minutes = settings.minutes ?? protocol.minutes;
  log(`quality ${protocol.name}: training up to ${minutes} min with the default recipe on ${testDir}, then evaluating on the same images beside raw pixels`);
  const trained = await engineRequest(client, {
    type: 'train',
    imagesDir: testDir,
    runDir,
    options: { minutes, device: settings.device ?? 'auto' },
  });
  const evaluated = await engineRequest(client, { type: 'evaluate', runDir, pixelBaseline: true });
  const pixels = evaluated.pixels!;
  const scores = (values: { nmi: number; ari: number; acc: number; knn: number }) => ({ nmi: round(values.nmi, 4), ari: round(values.ari, 4), acc: round(values.acc, 4), knn: round(values.knn, 4) });
  return {
    mode: 'quality',
    protocol: protocol.name,
    minutes,
    duration_s: round(trained.durationMs / 1000),
    stop_reason: trained.stopReason,
    health: trained.health?.state,
    device: trained.device ?? 'cpu',
    adapter: trained.adapter,
    images: trained.images,
    epochs: trained.epochs,
    steps: trained.steps,
    train_imgs_per_s: round(trained.imagesPerSecond),
    nmi: round(evaluated.nmi, 4),
    ari: round(evaluated.ari, 4),
    acc: round(evaluated.acc, 4),
    knn: round(evaluated.knn, 4),
    projection_nmi: round(evaluated.projection_nmi, 4),
    proto_nmi: round(evaluated.proto_nmi, 4),
    target_nmi: protocol.targetNmi,
    meets_target: evaluated.nmi >= protocol.targetNmi,
    pixels: scores(pixels.plain),
    pixels_normalised: scores(pixels.normalised),
    // Measured with swav_torch.py in the 10,000-image protocol (../shared/NOTES.md).
    ...(protocol.name === '10k' ? { reference_nmi: { 'width 32, 2+4 crops, 10 min': 0.492, 'width 16, 2+2 crops, 10 min': 0.594 } } : {}),
  };
}

/**
 * Fashion-MNIST's 10,000 test images (or the first `perClass` of each class) as <dataDir>/test/<class>/*.png,
 * written once from Debian's idx files.
 */
async function ensureTestImages(dataDir: string, idxDir: string, perClass?: number): Promise<string> {
  const testDir = path.join(dataDir, 'test');
  const classes = existsSync(testDir) ? readdirSync(testDir, { withFileTypes: true }).filter((entry) => entry.isDirectory()) : [];
  const complete = classes.length === 10 && classes.every((entry) => readdirSync(path.join(testDir, entry.name)).length === (perClass ?? 1000));
  if (complete) return testDir;
  if (!existsSync(path.join(idxDir, 't10k-images-idx3-ubyte.gz'))) {
    throw new Error(`Fashion-MNIST is not in ${idxDir}. Install it with apt-get install dataset-fashion-mnist, or pass its folder.`);
  }
  log(`writing Fashion-MNIST's test images to ${testDir}`);
  const { writeFashionMnistPngs } = await import('../engine/data/fashionMnist');
  await writeFashionMnistPngs({ idxDir, outDir: dataDir, splits: ['test'], perClassLimit: perClass });
  return testDir;
}

interface ReferenceOutcome {
  result?: Record<string, unknown>;
  skipped?: string;
}

/**
 * Runs swav_torch.py for `seconds` with as many threads as we use, and reads its JSON line. On the GPU side it
 * runs on CUDA where the python's torch has it. On the CPU it runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE,
 * which some machines set for old OpenBLAS builds and which slow Debian's torch (66 against 75 img/s).
 */
async function runReference(seconds: number, settings: BenchOptions, repositoryRoot: string, side: { cuda: boolean; batchSize: number }): Promise<ReferenceOutcome> {
  const script = settings.referenceScript ?? path.resolve(repositoryRoot, '..', 'shared', 'reference', 'swav_torch.py');
  if (!existsSync(script)) return { skipped: `reference script not found at ${script}` };
  const python = findPython(settings.python, side.cuda);
  if (python === undefined) {
    return {
      skipped: side.cuda
        ? 'no python whose torch has CUDA (pass one with --python)'
        : 'no python with torch, sklearn and scipy (Debian: apt-get install python3-torch python3-sklearn python3-scipy)',
    };
  }
  const threads = Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  const idxDir = settings.idxDir ?? defaultIdxDir;
  log(`reference: ${python} ${path.basename(script)} for ${seconds} s on ${side.cuda ? 'cuda' : `${threads} threads`} (width 32, 2+4 crops, batch ${side.batchSize})`);
  const environment = { ...process.env };
  delete environment.OPENBLAS_CORETYPE;
  delete environment.OPENBLAS_L2_SIZE;
  const referenceArgs = [script, idxDir, '--seconds', String(seconds), '--threads', String(threads), '--batch', String(side.batchSize), ...(side.cuda ? ['--device', 'cuda'] : [])];
  const output = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(python, referenceArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: environment });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.on('error', (error) => resolve({ code: -1, stdout, stderr: String(error) }));
  });
  const line = output.stdout.trim().split('\n').pop() ?? '';
  try {
    return { result: JSON.parse(line) as Record<string, unknown> };
  } catch {
    return { skipped: `the reference failed (exit ${output.code}): ${output.stderr.trim().split('\n').pop() ?? ''}` };
  }
}

function findPython(explicit: string | undefined, cuda: boolean): string | undefined {
  const candidates = [explicit, process.env.CLUSTER_LENS_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => Boolean(c));
  const check = cuda ? 'import torch, sklearn, scipy; assert torch.cuda.is_available()' : 'import torch, sklearn, scipy';
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['-c', check], { stdio: 'ignore', timeout: 60_000 });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

/**
 * Multiply-accumulates of one forward pass at 28 px: ours from the network's layout, the reference's (four plain
 * conv-conv blocks at width 32) written out from swav_torch.py, so a difference in the networks would show.
 */
function forwardMacs(): { ours: number; reference: number } {
  const conv = (sizePx: number, inChannels: number, outChannels: number) => sizePx * sizePx * 9 * inChannels * outChannels;
  const w = 32;
  const reference =
    conv(28, 1, w) + conv(28, w, w) + conv(14, w, 2 * w) + conv(14, 2 * w, 2 * w) +
    conv(7, 2 * w, 4 * w) + conv(7, 4 * w, 4 * w) + conv(4, 4 * w, 8 * w) + conv(4, 8 * w, 8 * w);
  const layout = networkLayout({ channels: 1, stemStride: 1, width: w, blocksPerStage: referenceRecipe.blocksPerStage!, architecture: referenceRecipe.architecture });
  return { ours: forwardConvMacs(layout, 28), reference };
}

async function engineRequest<T extends WorkRequest['type']>(client: EngineClient, request: Omit<Extract<WorkRequest, { type: T }>, 'id'> & { type: T }): Promise<ResultOf[T]> {
  let lastPrinted = 0;
  const onProgress = (event: ProgressEvent) => {
    const now = Date.now();
    if (now - lastPrinted < 5000 && event.fraction < 1) return;
    lastPrinted = now;
    const speed = event.imagesPerSecond !== undefined ? `  ${event.imagesPerSecond.toFixed(1)} img/s` : '';
    log(`  ${event.phase} ${Math.round(event.fraction * 100)}%${speed}${event.message && event.phase !== 'train' ? `  ${event.message}` : ''}`);
  };
  return client.request(request, {
    onProgress,
    onLog: (event) => {
      if (event.level !== 'debug') log(`  [${event.level}] ${event.message}`);
    },
  });
}

function formatFigures(figures: Record<string, unknown>): string {
  if (figures.mode === 'quality') {
    const f = figures as Record<string, number | string | boolean>;
    const pixels = figures.pixels as Record<string, number>;
    const normalised = figures.pixels_normalised as Record<string, number>;
    const row = (name: string, values: Record<string, number | string | boolean>) => `  ${name.padEnd(26)} NMI ${values.nmi}  ARI ${values.ari}  ACC ${values.acc}  kNN ${values.knn}`;
    return [
      `quality ${f.protocol}: up to ${f.minutes} min on ${f.device}${f.adapter ? ` (${f.adapter})` : ''}, ${f.images} images, ${f.epochs} epochs, ${f.steps} steps in ${f.duration_s} s, ${f.train_imgs_per_s} img/s; stopped: ${f.stop_reason} (${f.health})`,
      row('learned (k-means):', f),
      row('raw pixels:', pixels),
      row('raw pixels, L2-normalised:', normalised),
      `  target NMI ${f.target_nmi}: ${f.meets_target ? 'met' : 'not met'} (k-means on backbone features, as the reference; on the projections NMI ${f.projection_nmi}; prototype assignment NMI ${f.proto_nmi})`,
      ...(f.protocol === '10k' ? ['  reference (swav_torch.py, 10 min): NMI 0.492 at width 32 / 2+4 crops, 0.594 at width 16 / 2+2 crops'] : []),
    ].join('\n');
  }
  const ours = figures.ours as Record<string, unknown>;
  const reference = figures.reference as Record<string, unknown>;
  const macs = ours.macs_per_28px_image as { ours: number; reference: number };
  const lines = [
    `speed on ${ours.device}${ours.adapter ? ` (${ours.adapter})` : ''}: ${figures.seconds} s of training each, Fashion-MNIST 28 px, width 32, 2+4 crops, batch ${ours.batch_size}`,
    `  ours (steps on onnxruntime, ${ours.device}; embedding on ${ours.embed_device}): train ${ours.train_imgs_per_s} img/s (${ours.steps} steps), embed ${ours.embed_imgs_per_s} img/s`,
    `    (embed: forward passes alone, as the reference times them; the whole index job ran at ${ours.index_imgs_per_s} img/s)`,
  ];
  if (reference.skipped) {
    lines.push(`  reference: skipped: ${reference.skipped}`);
  } else {
    lines.push(`  reference (torch ${reference.torch}, ${reference.device === 'cpu' || reference.device === undefined ? `${reference.threads} threads` : reference.device}): train ${reference.imgs_per_s} img/s (${reference.iters} steps), embed ${reference.embed_imgs_per_s} img/s`);
    lines.push(`  ratio ours/reference: train ${figures.train_ratio}, embed ${figures.embed_ratio}`);
  }
  lines.push(`  forward MACs per 28 px image: ours ${(macs.ours / 1e6).toFixed(1)} M, reference ${(macs.reference / 1e6).toFixed(1)} M`);
  return lines.join('\n');
}

/** The folder holding our package.json: dist/.. from the bundle, src/cli/../.. from source. */
function packageRoot(start: string): string {
  let directory = start;
  while (!existsSync(path.join(directory, 'package.json')) && path.dirname(directory) !== directory) directory = path.dirname(directory);
  return directory;
}

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}
