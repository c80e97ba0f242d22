import type { TrainOptions } from '../protocol/options';
import { EngineError } from './errors';

/** The one place training defaults live; CLI flags and VS Code settings map onto these. */
export const defaultTrainOptions: Readonly<TrainOptions> = Object.freeze({
  imageSizePx: 64,
  prototypes: 30,
  epochs: 0,
  minutes: 10,
  stopWhenConverged: true,
  batchSize: 64,
  width: 16,
  blocksPerStage: [1, 1, 1],
  architecture: 'resnet',
  projectionHiddenDim: 256,
  projectionDim: 64,
  localCrops: 4,
  localCropSizePx: 0, // 0: derived from the image size (≈ 0.57 × global, as 128/224 in SwAV's recipe)
  globalCropScale: [0.35, 1],
  localCropScale: [0.1, 0.35],
  learningRate: 2e-3,
  finalLearningRate: 2e-5,
  warmupEpochs: 1,
  weightDecay: 1e-6,
  temperature: 0.1,
  sinkhornEpsilon: 0.05,
  sinkhornIterations: 3,
  freezePrototypesSteps: 100,
  queueLength: 0,
  queueStartEpoch: 2,
  seed: 0,
  device: 'auto',
  backboneNormalization: 'imagenet',
}) as TrainOptions;

/** Options of runs from before TensorFlow.js was retired, dropped when their options are read. */
export const retiredTrainOptions = ['backend', 'trainingRuntime'] as const;

/** Epochs for a head on a frozen backbone when none are given. */
const frozenHeadEpochs = 30;

const devices = ['auto', 'gpu', 'cpu'];

/** What the defaults adapt to, once known: where the job runs and the images it trains on. */
export interface TrainContext {
  /** Whether training runs on a hardware GPU (a software adapter trains with the CPU's recipe). */
  gpu: boolean;
  /** The images' typical size: the median of their shorter sides, in pixels. */
  nativeImageSizePx?: number;
  /** How many images the folder holds: the time budget grows with it. */
  imageCount?: number;
}

/**
 * The time budget when none is given: about a minute per 1,000 images on the CPU, plus one (the 2,000-image
 * protocol gets 3 minutes, 10,000 images 11), a fifth of that on a GPU; never under 2 or over 60 minutes. Runs
 * stop sooner once converged, so this is a ceiling, not a target.
 */
export function timeBudgetMinutes(imageCount: number, gpu: boolean): number {
  const minutes = 1 + Math.ceil(imageCount / 1000) / (gpu ? 5 : 1);
  return Math.min(60, Math.max(2, Math.round(minutes)));
}

/**
 * The recipe a hardware GPU affords: a ResNet-18-sized backbone (64 channels, two blocks in each of four
 * stages), 128 px global crops, batch 256 and more prototypes, so that photos cluster by content, not colour.
 */
export const gpuRecipe: Readonly<Partial<TrainOptions>> = Object.freeze({
  batchSize: 256,
  imageSizePx: 128,
  width: 64,
  blocksPerStage: [2, 2, 2, 2],
  projectionHiddenDim: 1024,
  projectionDim: 128,
  prototypes: 100,
});

/**
 * Crops for small images (32 px and under, such as MNIST-like sets): a global crop that keeps at least half the
 * image and local crops of a fifth to a half, two of each. At 28 px SwAV's usual scales (global down to 0.35,
 * local 0.1–0.35) leave a few pixels of a garment. Measured at a fixed number of epochs (36 on 2,000 Fashion-MNIST
 * test images, 24 on the 1,000-image sample): k-means NMI 0.547 → 0.563 and 0.499 → 0.515, and fewer images
 * change cluster between epochs at the end (49% against 58% on the sample), a signal that needs no labels; two
 * local crops instead of four also make each step cheaper.
 */
export const smallImageCrops: Readonly<Partial<TrainOptions>> = Object.freeze({
  globalCropScale: [0.5, 1] as [number, number],
  localCropScale: [0.2, 0.5] as [number, number],
  localCrops: 2,
});

/** Images at or under this size train with `smallImageCrops`. */
export const smallImageSizePx = 32;

/**
 * Defaults that depend on where the job runs: a GPU takes the GPU recipe.
 * Images are never upscaled past their typical native size (a 28 px dataset trains at 28 px, not 64): extra
 * pixels cost time and add no detail. None of this looks at labels.
 */
export function adaptedDefaults(context: TrainContext): Partial<TrainOptions> {
  const base: Partial<TrainOptions> = context.gpu ? { ...gpuRecipe } : { batchSize: defaultTrainOptions.batchSize, imageSizePx: defaultTrainOptions.imageSizePx };
  const imageSizePx = base.imageSizePx!;
  const native = context.nativeImageSizePx;
  // At least 16 px, since the network downsamples 4–8×.
  base.imageSizePx = native !== undefined && native > 0 ? Math.max(16, Math.min(imageSizePx, Math.round(native))) : imageSizePx;
  if (context.imageCount !== undefined) base.minutes = timeBudgetMinutes(context.imageCount, context.gpu);
  if (base.imageSizePx <= smallImageSizePx) Object.assign(base, smallImageCrops);
  return base;
}

/**
 * Merges partial options over the defaults (adapted to `context` when given) and rejects values that cannot
 * work, naming the setting.
 */
export function resolveTrainOptions(partial: Partial<TrainOptions> = {}, context?: TrainContext): TrainOptions {
  const defined = Object.fromEntries(Object.entries(partial).filter(([, value]) => value !== undefined)) as Partial<TrainOptions>;
  const adapted = context ? adaptedDefaults(context) : {};
  const options: TrainOptions = { ...defaultTrainOptions, ...adapted, ...defined } as TrainOptions;
  // SwAV freezes the prototypes for the first epoch; a small folder's first epoch is far fewer than 100 steps
  // (measured on the sample, 24 epochs: k-means NMI 0.515 -> 0.523, kNN 0.714 -> 0.721).
  if (defined.freezePrototypesSteps === undefined && context?.imageCount !== undefined) {
    options.freezePrototypesSteps = Math.min(defaultTrainOptions.freezePrototypesSteps, Math.max(1, Math.floor(context.imageCount / options.batchSize)));
  }
  // A fixed epoch count is a budget the caller chose: it runs out, not cut short by convergence.
  if (defined.epochs !== undefined && defined.epochs > 0 && defined.stopWhenConverged === undefined) options.stopWhenConverged = false;
  // A head on a frozen backbone trains on features cropped ahead for a known number of epochs.
  if (options.backbone !== undefined && options.epochs === 0) options.epochs = frozenHeadEpochs;
  // Runs from before TensorFlow.js was retired name a tfjs backend and training runtime: every step now runs on
  // onnxruntime, on the device `device` chooses.
  for (const retired of retiredTrainOptions) delete (options as unknown as Record<string, unknown>)[retired];
  if (options.localCropSizePx === 0) options.localCropSizePx = Math.max(8, Math.round((options.imageSizePx * 4) / 7 / 4) * 4);

  const check = (ok: boolean, setting: string, expected: string) => {
    if (!ok) {
      const value = JSON.stringify((options as unknown as Record<string, unknown>)[setting]);
      throw new EngineError('BAD_CONFIG', `Setting "${setting}" is ${value}; it must be ${expected}.`);
    }
  };
  const isInt = (value: number, min: number, max: number) => Number.isInteger(value) && value >= min && value <= max;
  check(isInt(options.imageSizePx, 8, 512), 'imageSizePx', 'a whole number of pixels from 8 to 512');
  // One prototype is allowed, to show what a collapsed run looks like; training flags it at once.
  check(isInt(options.prototypes, 1, 10000), 'prototypes', 'a whole number from 1 to 10000');
  check(isInt(options.epochs, 0, 100000), 'epochs', 'a whole number ≥ 0 (0 means no epoch cap)');
  check(Number.isFinite(options.minutes) && options.minutes >= 0, 'minutes', 'a number ≥ 0 (0 means no time limit)');
  check(options.epochs > 0 || options.minutes > 0, 'minutes', 'above 0 when epochs is 0: a run needs an epoch count or a time limit');
  check(isInt(options.batchSize, 2, 8192), 'batchSize', 'a whole number from 2 to 8192');
  check(isInt(options.width, 1, 1024), 'width', 'a whole number of channels from 1 to 1024');
  check(
    Array.isArray(options.blocksPerStage) && options.blocksPerStage.length >= 1 && options.blocksPerStage.length <= 6 && options.blocksPerStage.every((n) => isInt(n, 1, 16)),
    'blocksPerStage',
    'a list of 1 to 6 whole numbers from 1 to 16, e.g. [1,1,1]',
  );
  check(isInt(options.projectionHiddenDim, 1, 8192), 'projectionHiddenDim', 'a whole number from 1 to 8192');
  check(isInt(options.projectionDim, 2, 4096), 'projectionDim', 'a whole number from 2 to 4096');
  check(isInt(options.localCrops, 0, 16), 'localCrops', 'a whole number from 0 to 16');
  check(isInt(options.localCropSizePx, 4, options.imageSizePx), 'localCropSizePx', `a whole number from 4 to the image size (${options.imageSizePx})`);
  const isScale = (range: [number, number]) => Array.isArray(range) && range.length === 2 && range[0] > 0 && range[0] <= range[1] && range[1] <= 1;
  check(isScale(options.globalCropScale), 'globalCropScale', 'a pair [min, max] with 0 < min ≤ max ≤ 1');
  check(isScale(options.localCropScale), 'localCropScale', 'a pair [min, max] with 0 < min ≤ max ≤ 1');
  check(options.learningRate > 0 && options.learningRate < 10, 'learningRate', 'a number between 0 and 10');
  check(options.finalLearningRate >= 0 && options.finalLearningRate <= options.learningRate, 'finalLearningRate', 'between 0 and learningRate');
  check(options.warmupEpochs >= 0, 'warmupEpochs', 'a number ≥ 0');
  check(options.weightDecay >= 0, 'weightDecay', 'a number ≥ 0');
  check(options.temperature > 0, 'temperature', 'a number > 0');
  check(options.sinkhornEpsilon > 0, 'sinkhornEpsilon', 'a number > 0');
  check(isInt(options.sinkhornIterations, 1, 100), 'sinkhornIterations', 'a whole number from 1 to 100');
  check(isInt(options.freezePrototypesSteps, 0, 1e9), 'freezePrototypesSteps', 'a whole number ≥ 0');
  check(isInt(options.queueLength, 0, 1e6) && (options.queueLength === 0 || options.queueLength % options.batchSize === 0), 'queueLength', 'a multiple of batchSize (0 turns the queue off)');
  check(isInt(options.queueStartEpoch, 0, 1e6), 'queueStartEpoch', 'a whole number ≥ 0');
  check(Number.isInteger(options.seed), 'seed', 'a whole number');
  check(devices.includes(options.device), 'device', devices.join(', '));
  check(['resnet', 'plain'].includes(options.architecture), 'architecture', 'resnet or plain');
  check(['imagenet', 'none'].includes(options.backboneNormalization ?? 'imagenet'), 'backboneNormalization', 'imagenet or none');
  check(options.followLinks === undefined || typeof options.followLinks === 'boolean', 'followLinks', 'true or false');
  return options;
}
