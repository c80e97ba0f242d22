import type { DeviceInfo, TrainOptions } from '../../protocol/options';
import { healthStateLabels, type StopReason, type TrainingHealth } from '../../protocol/engine';
import { cpuThreadCount } from '../runtime/threads';
import { checkCropScales, drawViews, type MultiCropOptions } from '../data/augment';
import { batchPixels, channelStatistics } from '../data/batch';
import type { ImageSet } from '../data/decode';
import { EngineError } from '../errors';
import { yieldToEventLoop, type JobContext } from '../jobContext';
import { loadCheckpoint, saveCheckpoint, type CheckpointHeader } from '../model/checkpoint';
import { createModel, disposeModel, parameterCount, startStep, trainableVariables, updateRunningStatistics, type BatchStatistics, type ModelSpec, type SwavModel } from '../model/model';
import { createRandom, type Random } from '../util/random';
import { Adam } from './adam';
import { HealthMonitor } from './health';
import { OrtStepGradients } from './ortGradients';
import { EmbeddingQueue } from './queue';
import { multiCropOptions, type RunFolderWriter } from './runSetup';
import { learningRateAt } from './schedule';

const cropsForAssign = [0, 1];

/** "up to 3 min, or less once converged", "10 epochs". */
export function budgetText(options: Pick<TrainOptions, 'epochs' | 'minutes' | 'stopWhenConverged'>): string {
  const limits = [options.epochs > 0 ? `${options.epochs} epochs` : '', options.minutes > 0 ? `${options.minutes} min` : ''].filter(Boolean).join(' or ');
  return `${options.stopWhenConverged ? 'up to ' : ''}${limits}${options.stopWhenConverged ? ', or less once converged' : ''}`;
}

interface TrainOutcome {
  epochs: number;
  steps: number;
  finalLoss: number;
  imagesPerSecond: number;
  cancelled: boolean;
  stopReason: StopReason;
  health?: TrainingHealth;
}

/**
 * One SwAV training step and the state it updates: model, optimiser, queue and the augmentation's random stream.
 * The trainer drives it; the profiling and benchmark scripts call it directly.
 */
export class TrainStep {
  readonly model: SwavModel;
  readonly optimizer = new Adam();
  readonly random: Random;
  private readonly queue: EmbeddingQueue | undefined;
  private readonly crops: MultiCropOptions;

  private stepGradients: OrtStepGradients | undefined;

  constructor(
    private readonly options: TrainOptions,
    private readonly images: ImageSet,
    setup: TrainStepSetup = {},
  ) {
    const { resumeFrom, gpu = false, specOverrides = {} } = setup;
    this.crops = multiCropOptions(options);
    checkCropScales(this.crops);
    this.queue = options.queueLength > 0 ? new EmbeddingQueue(options.queueLength, cropsForAssign.length, options.projectionDim) : undefined;
    if (resumeFrom) {
      this.model = resumeFrom.model;
      this.optimizer.importState(resumeFrom.header.step, resumeFrom.extra);
      this.random = createRandom(resumeFrom.header.randomState);
    } else {
      this.random = createRandom(options.seed);
      const { mean, std } = channelStatistics(images);
      this.model = createModel(
        {
          channels: images.channels,
          stemStride: stemStrideFor(options.imageSizePx, options.blocksPerStage.length, gpu),
          width: options.width,
          blocksPerStage: options.blocksPerStage,
          architecture: options.architecture,
          projectionHiddenDim: options.projectionHiddenDim,
          projectionDim: options.projectionDim,
          prototypes: options.prototypes,
          inputMean: mean,
          inputStd: std,
          ...specOverrides,
        },
        this.random,
      );
    }
  }

  /**
   * Multi-crop, forward, swapped loss, Adam on the images `batch` (indices into the set); returns the loss, the
   * prototype usage and each image's cluster (the best prototype of its first global crop). `step` is the global step (prototypes stay frozen before `freezePrototypesSteps`), `epoch`
   * the current epoch (the queue joins from `queueStartEpoch`).
   */
  async run(batch: number[], learningRate: number, step = Infinity, epoch = Infinity): Promise<{ loss: number; usage: number[]; clusters: Int32Array }> {
    const { model, options } = this;
    const updated = startStep(model, step < options.freezePrototypesSteps);
    const useQueue = this.queue !== undefined && epoch >= options.queueStartEpoch;
    const outcome = await this.gradients(batch, useQueue);
    const namedGradients = new Map([...outcome.gradients].filter(([name]) => updated.has(name)));
    this.optimizer.apply(model.variables, namedGradients, learningRate, options.weightDecay);
    updateRunningStatistics(model, outcome.statistics);
    this.queue?.push(outcome.assignedEmbeddings);
    const clusters = outcome.clusters;
    const usage = new Array<number>(options.prototypes).fill(0);
    for (const cluster of clusters) usage[cluster] += 1 / clusters.length;
    return { loss: outcome.loss, usage, clusters };
  }

  /** The step's gradients from one onnxruntime run of the training graph: crops, forward, queue scores, loss and backward. */
  private async gradients(batch: number[], useQueue: boolean): Promise<StepOutcome> {
    const { model, options } = this;
    const { globalCrops, globalSizePx, globalScale, localCrops: localCount, localSizePx, localScale } = this.crops;
    const sizePx = this.images.imageSizePx;
    // The global views' draws, then the local ones', from the run's seeded stream.
    const global = drawViews(this.random, batch.length, sizePx, globalCrops, globalScale, this.crops);
    const local = localCount > 0 ? drawViews(this.random, batch.length, sizePx, localCount, localScale, this.crops) : undefined;
    const queueEmbeddings = useQueue ? this.queue!.embeddings() : undefined;
    const trainable = trainableVariables(model);
    if (this.stepGradients?.batch !== batch.length) {
      void this.stepGradients?.dispose();
      const shapes = new Map([...trainable].map(([name, v]) => [name, v.shape]));
      const loss = { temperature: options.temperature, epsilon: options.sinkhornEpsilon, sinkhornIterations: options.sinkhornIterations, cropsForAssign };
      const cropsFrom = { imageSizePx: sizePx, jitter: this.crops.colorJitter > 0 };
      this.stepGradients = new OrtStepGradients(model.spec, shapes, { batch: batch.length, globalCrops, globalSizePx, localCrops: localCount, localSizePx, cropsFrom }, loss, cpuThreadCount());
    }
    const weights = new Map([...trainable].map(([name, v]) => [name, v.values]));
    const result = await this.stepGradients.compute({ images: batchPixels(this.images, batch), global, local, weights, queueEmbeddings });
    const rows = batch.length;
    const dims = model.spec.projectionDim;
    const assignedEmbeddings = cropsForAssign.map((crop) => result.globalEmbedding.slice(crop * rows * dims, (crop + 1) * rows * dims));
    return { loss: result.loss, gradients: result.gradients, statistics: result.statistics, assignedEmbeddings, clusters: bestPrototypes(result.globalScores, rows, options.prototypes) };
  }

  dispose(): void {
    disposeModel(this.model);
    this.optimizer.dispose();
    this.queue?.dispose();
    void this.stepGradients?.dispose();
  }
}

/** What one step's gradient computation hands to the update. */
interface StepOutcome {
  loss: number;
  /** By variable name. */
  gradients: Map<string, Float32Array>;
  statistics: BatchStatistics;
  /** The assigned crops' embeddings, [batch, projectionDim] each, for the queue. */
  assignedEmbeddings: Float32Array[];
  /** Each image's best prototype for its first global crop. */
  clusters: Int32Array;
}

/** The argmax of each of the first `rows` rows of row-major `scores` [*, prototypes]. */
function bestPrototypes(scores: Float32Array, rows: number, prototypes: number): Int32Array {
  const best = new Int32Array(rows);
  for (let row = 0; row < rows; row++) {
    let top = 0;
    for (let k = 1; k < prototypes; k++) if (scores[row * prototypes + k] > scores[row * prototypes + top]) top = k;
    best[row] = top;
  }
  return best;
}

export interface TrainStepSetup {
  resumeFrom?: Awaited<ReturnType<typeof loadCheckpoint>>;
  /** The step runs on a GPU (the stem then keeps finer maps). */
  gpu?: boolean;
  specOverrides?: Partial<ModelSpec>;
}

/** A fresh training step for `options` on `images`, for scripts that time or profile it. */
export function createTrainStep(options: TrainOptions, images: ImageSet, setup: Omit<TrainStepSetup, 'resumeFrom'> = {}): TrainStep {
  return new TrainStep(options, images, setup);
}

/**
 * The stem halves the resolution when the last stage still sees at least 3×3 (6×6 on a GPU, which can afford
 * the finer maps): a 28 px image through three stages runs at 14, 7 and 4 px on CPU, four times fewer
 * positions in the widest-resolution stage (3× faster training steps, measured on the CPU).
 */
export function stemStrideFor(imageSizePx: number, stages: number, gpu: boolean): 1 | 2 {
  let lastStagePx = Math.ceil(imageSizePx / 2);
  for (let stage = 1; stage < stages; stage++) lastStagePx = Math.ceil(lastStagePx / 2);
  return lastStagePx >= (gpu ? 6 : 3) ? 2 : 1;
}

/** A training run's loop: steps, schedule, health, checkpoints and metrics, until the budget or convergence stops it. */
export class SwavTrainer {
  private readonly training: TrainStep;
  private readonly batchSize: number;
  private readonly stepsPerEpoch: number;
  private epoch = 0;
  private step = 0;
  private previousElapsedMs = 0;
  private metricsBuffer: string[] = [];

  constructor(
    private readonly options: TrainOptions,
    private readonly images: ImageSet,
    private readonly device: DeviceInfo,
    private readonly context: JobContext,
    /** Where the checkpoints and the log go (the run's manifest with the first checkpoint). */
    private readonly folder: RunFolderWriter,
    resumeFrom?: Awaited<ReturnType<typeof loadCheckpoint>>,
  ) {
    this.batchSize = Math.min(options.batchSize, images.records.length);
    this.stepsPerEpoch = Math.floor(images.records.length / this.batchSize);
    this.training = new TrainStep(options, images, { resumeFrom });
    if (resumeFrom) {
      this.epoch = resumeFrom.header.epoch;
      this.step = resumeFrom.header.step;
      this.previousElapsedMs = resumeFrom.header.elapsedMs;
      context.log('info', `Resuming from epoch ${this.epoch}, step ${this.step}`);
    }
    context.log('info', `Model: ${parameterCount(this.model).toLocaleString('en')} parameters; ${images.records.length} images, batch ${this.batchSize}, ${this.stepsPerEpoch} steps per epoch`);
  }

  get model(): SwavModel {
    return this.training.model;
  }

  async run(): Promise<TrainOutcome> {
    const { options, context } = this;
    const sessionStart = Date.now();
    const elapsedMs = () => this.previousElapsedMs + Date.now() - sessionStart;
    const budgetMs = options.minutes > 0 ? options.minutes * 60_000 : Infinity;
    // No epoch cap (epochs 0): the time budget or convergence ends the run.
    const epochCap = options.epochs > 0 ? options.epochs : Infinity;
    const totalSteps = epochCap * this.stepsPerEpoch;
    const knownTotal = Number.isFinite(totalSteps) ? totalSteps : undefined;
    const warmupSteps = Math.max(1, Math.round(options.warmupEpochs * this.stepsPerEpoch));
    const monitor = new HealthMonitor(this.images.records.length, options.prototypes);
    const queueActive = () => options.queueLength > 0 && this.epoch >= options.queueStartEpoch;
    let health: TrainingHealth | undefined;
    let stopReason: StopReason | undefined;
    let lastLoss = NaN;
    let sessionSteps = 0;
    let sessionImages = 0;
    const recentLosses: number[] = [];
    // Until the first step ends (the slowest: kernels compile and warm up), heartbeats repeat this, not "decoding".
    context.progress({ phase: 'train', fraction: 0.05, step: this.step, totalSteps: knownTotal, message: `Training: step ${this.step + 1}${knownTotal ? ` of ${knownTotal}` : ''} (the first step is the slowest)` });
    const budgetFraction = () => Math.min(1, Math.max(this.step / totalSteps, elapsedMs() / budgetMs));

    while (this.epoch < epochCap && stopReason === undefined) {
      // Each epoch's order has its own seed, so a run resumed mid-epoch sees the same batches.
      const order = createRandom(options.seed * 100_003 + this.epoch + 1).shuffle(Array.from({ length: this.images.records.length }, (_, i) => i));
      const firstStep = this.step - this.epoch * this.stepsPerEpoch; // a resumed run continues mid-epoch
      for (let stepInEpoch = Math.max(0, firstStep); stepInEpoch < this.stepsPerEpoch; stepInEpoch++) {
        const learningRate =
          this.step < warmupSteps ? (options.learningRate * (this.step + 1)) / warmupSteps : learningRateAt(budgetFraction(), 0, options.learningRate, options.finalLearningRate);
        const batch = order.slice(stepInEpoch * this.batchSize, (stepInEpoch + 1) * this.batchSize);
        const { loss, usage, clusters } = await this.training.run(batch, learningRate, this.step, this.epoch);
        this.step++;
        sessionSteps++;
        sessionImages += batch.length;
        lastLoss = loss;
        recentLosses.push(loss);
        if (recentLosses.length > 20) recentLosses.shift();
        health = monitor.observeStep(batch, clusters, loss, { queueActive: queueActive() });
        const seconds = (Date.now() - sessionStart) / 1000;
        const imagesPerSecond = sessionImages / Math.max(seconds, 1e-3);
        const etaSeconds = Math.min(((totalSteps - this.step) * this.batchSize) / imagesPerSecond, (budgetMs - elapsedMs()) / 1000);
        this.metricsBuffer.push(JSON.stringify({ step: this.step, epoch: this.epoch, loss, learningRate, imagesPerSecond, elapsedMs: elapsedMs() }));
        context.progress({
          phase: 'train',
          fraction: 0.05 + 0.85 * budgetFraction(),
          epoch: this.epoch + 1,
          epochs: options.epochs > 0 ? options.epochs : undefined,
          step: this.step,
          totalSteps: knownTotal,
          loss,
          learningRate,
          imagesPerSecond,
          ...(Number.isFinite(etaSeconds) ? { etaSeconds: Math.max(0, etaSeconds) } : {}),
          prototypeUsage: usage,
          health,
        });
        if (!Number.isFinite(loss)) {
          throw new EngineError('INTERNAL', `Training diverged at step ${this.step} (loss ${loss}). Lower the learning rate (now ${options.learningRate}) and train again; the last good checkpoint is kept.`);
        }
        await yieldToEventLoop();
        if (context.signal.aborted) {
          stopReason = 'cancelled';
          break;
        }
        if (elapsedMs() >= budgetMs) {
          stopReason = 'time';
          break;
        }
      }
      if (stopReason === undefined) {
        this.epoch++;
        health = monitor.endEpoch({ queueActive: queueActive() });
        this.metricsBuffer.push(JSON.stringify({ epoch: this.epoch, elapsedMs: elapsedMs(), health }));
        context.progress({ phase: 'train', fraction: 0.05 + 0.85 * budgetFraction(), epoch: this.epoch, epochs: options.epochs > 0 ? options.epochs : undefined, step: this.step, totalSteps: knownTotal, loss: lastLoss, health });
        const changed = health.changedShare !== undefined ? `, ${(100 * health.changedShare).toFixed(1)}% of images changed cluster` : '';
        context.log('info', `Epoch ${this.epoch}: ${healthStateLabels[health.state]}; ${health.prototypesUsed}/${health.prototypes} prototypes used (entropy ${health.usageEntropy.toFixed(2)} of ${health.lossReference.toFixed(2)})${changed}`);
        if (options.stopWhenConverged && monitor.isConverged) stopReason = 'converged';
        else if (this.epoch >= epochCap) stopReason = 'epochs';
      }
      await this.save(elapsedMs());
    }
    stopReason ??= 'epochs';
    if (stopReason === 'cancelled') context.log('info', `Training cancelled at step ${this.step}; checkpoint saved.`);
    if (stopReason === 'time') context.log('info', `Time budget of ${options.minutes} min reached at epoch ${this.epoch + 1}, step ${this.step}; checkpoint saved.`);
    if (stopReason === 'converged') context.log('info', `Converged after ${this.epoch} epochs (${(elapsedMs() / 60_000).toFixed(1)} of ${options.minutes || '∞'} min): assignments stable for ${health?.stableEpochs} epochs and the loss flat.`);
    const finalLoss = recentLosses.length ? recentLosses.reduce((a, b) => a + b, 0) / recentLosses.length : lastLoss;
    return {
      epochs: this.epoch,
      steps: this.step,
      finalLoss,
      imagesPerSecond: sessionImages / Math.max((Date.now() - sessionStart) / 1000, 1e-3),
      cancelled: stopReason === 'cancelled',
      stopReason,
      health,
    };
  }

  private async save(elapsedMs: number): Promise<void> {
    const header: CheckpointHeader = {
      format: 'cluster-lens-checkpoint',
      spec: this.model.spec,
      options: this.options,
      epoch: this.epoch,
      step: this.step,
      elapsedMs,
      randomState: this.training.random.state(),
      device: this.device.label,
      savedAt: new Date().toISOString(),
    };
    const metrics = this.metricsBuffer;
    this.metricsBuffer = [];
    // A full disk here stops training with DISK_FULL, naming the last checkpoint that is intact.
    await this.folder.save({ epoch: this.epoch, step: this.step, write: (file) => saveCheckpoint(file, header, this.model, this.training.optimizer.exportState()) }, metrics);
  }

  dispose(): void {
    this.training.dispose();
  }
}


