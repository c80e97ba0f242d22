// SwAV with a frozen backbone: only the projection head and the prototypes learn, from backbone
// features of augmented crops. Same loss, Sinkhorn, Adam, schedule and queue as the full trainer.

import type { TrainOptions } from '../../protocol/options';
import { EngineError } from '../errors';
import { yieldToEventLoop, type JobContext } from '../jobContext';
import { normalizePrototypes, startStep, trainableVariables, updateRunningStatistics, weightsOf, type ModelSpec, type Parameter, type SwavModel } from '../model/model';
import { explainGraphNames as names, headGraph } from '../runtime/explainGraph';
import { OrtModel } from '../runtime/session';
import { cpuThreadCount } from '../runtime/threads';
import { Adam } from '../swav/adam';
import { OrtStepGradients } from '../swav/ortGradients';
import { EmbeddingQueue } from '../swav/queue';
import { learningRateAt } from '../swav/schedule';
import { createRandom, type Random } from '../util/random';

export type HeadTrainOptions = Pick<
  TrainOptions,
  | 'epochs'
  | 'minutes'
  | 'batchSize'
  | 'projectionHiddenDim'
  | 'projectionDim'
  | 'prototypes'
  | 'learningRate'
  | 'finalLearningRate'
  | 'warmupEpochs'
  | 'weightDecay'
  | 'temperature'
  | 'sinkhornEpsilon'
  | 'sinkhornIterations'
  | 'freezePrototypesSteps'
  | 'queueLength'
  | 'queueStartEpoch'
  | 'seed'
>;

/** Backbone features of augmented crops, however they are made (a precomputed bank, or onnxruntime per step). */
export interface CropFeatureSource {
  readonly images: number;
  readonly featureDim: number;
  /** Crops per image and step; the first two are the global crops whose codes the others predict. */
  readonly crops: number;
  /** One [indices.length × featureDim] array per crop. */
  cropFeatures(indices: number[], random: Random): Promise<Float32Array[]>;
}

export interface HeadTrainingOutcome {
  /** A head-only model: `head.*` and `prototypes` variables (see createHeadModel). The caller disposes it. */
  model: SwavModel;
  /** The optimiser's moments, for a checkpoint; the caller disposes it. */
  optimizer: Adam;
  epochs: number;
  steps: number;
  /** Mean loss over the last 20 steps. */
  finalLoss: number;
  losses: number[];
  imagesPerSecond: number;
  cancelled: boolean;
  /** Why it ended: cancelled, its time budget ran out, or its epochs were done. */
  stopReason: 'cancelled' | 'time' | 'epochs';
}

const cropsForAssign = [0, 1];

/**
 * The projection head and prototypes alone, with the variable names and initialisation of createModel,
 * so `head`, `normalizePrototypes` and checkpoints work unchanged. There is no backbone: `spec.width` is
 * the backbone's feature size and `spec.blocksPerStage` is [0]; the backbone lives in the ONNX file.
 */
export function createHeadModel(featureDim: number, options: Pick<TrainOptions, 'projectionHiddenDim' | 'projectionDim' | 'prototypes'>, random: Random, input: Pick<ModelSpec, 'channels' | 'inputMean' | 'inputStd'> = { channels: 3, inputMean: [], inputStd: [] }): SwavModel {
  const variables = new Map<string, Parameter>();
  const fill = (size: number, make: () => number) => Float32Array.from({ length: size }, make);
  const set = (name: string, values: Float32Array, shape: number[], trainable: boolean) => variables.set(name, { shape, values, trainable });
  const linear = (name: string, inDim: number, outDim: number) => {
    const bound = 1 / Math.sqrt(inDim); // PyTorch's nn.Linear initialisation, as createModel
    set(`${name}.weight`, fill(inDim * outDim, () => random.uniform(-bound, bound)), [inDim, outDim], true);
    set(`${name}.bias`, fill(outDim, () => random.uniform(-bound, bound)), [outDim], true);
  };
  linear('head.fc1', featureDim, options.projectionHiddenDim);
  const hidden = options.projectionHiddenDim;
  set('head.bn.gamma', fill(hidden, () => 1), [hidden], true);
  set('head.bn.beta', fill(hidden, () => 0), [hidden], true);
  set('head.bn.runningMean', fill(hidden, () => 0), [hidden], false);
  set('head.bn.runningVariance', fill(hidden, () => 1), [hidden], false);
  linear('head.fc2', hidden, options.projectionDim);
  set('prototypes', fill(options.prototypes * options.projectionDim, () => random.normal()), [options.prototypes, options.projectionDim], true);
  const model: SwavModel = {
    spec: {
      channels: input.channels,
      stemStride: 1,
      width: featureDim,
      blocksPerStage: [0],
      projectionHiddenDim: hidden,
      projectionDim: options.projectionDim,
      prototypes: options.prototypes,
      inputMean: input.inputMean,
      inputStd: input.inputStd,
    },
    variables,
  };
  normalizePrototypes(model);
  return model;
}

export interface HeadTrainingStart {
  /** A head to continue (from a checkpoint) or one made with the run's input description; default a fresh one. */
  model?: SwavModel;
  optimizer?: Adam;
  /** Called after every finished epoch and once when stopping early: the place to write a checkpoint. */
  onEpochEnd?: (state: { epoch: number; step: number; model: SwavModel; optimizer: Adam }) => Promise<void>;
}

/** Trains the head on `source` for `options.epochs` (or `options.minutes`); cancellable between steps. */
export async function trainHeadOnFeatures(source: CropFeatureSource, options: HeadTrainOptions, context: JobContext, start: HeadTrainingStart = {}): Promise<HeadTrainingOutcome> {
  if (source.crops < 2) throw new EngineError('BAD_CONFIG', `SwAV needs at least 2 crops per image; the feature source gives ${source.crops}.`);
  if (source.images < 2) throw new EngineError('NO_IMAGES', `Only ${source.images} image(s) to train on; training needs at least 2.`);
  const random = createRandom(options.seed);
  const model = start.model ?? createHeadModel(source.featureDim, options, random);
  const optimizer = start.optimizer ?? new Adam();
  const queue = options.queueLength > 0 ? new EmbeddingQueue(options.queueLength, cropsForAssign.length, options.projectionDim) : undefined;
  const batchSize = Math.min(options.batchSize, source.images);
  const gradients = new OrtStepGradients(
    model.spec,
    new Map([...trainableVariables(model)].map(([name, v]) => [name, v.shape])),
    { batch: batchSize, globalCrops: 2, globalSizePx: 0, localCrops: source.crops - 2, localSizePx: 0, featuresFrom: { featureDim: source.featureDim } },
    { temperature: options.temperature, epsilon: options.sinkhornEpsilon, sinkhornIterations: options.sinkhornIterations, cropsForAssign },
    cpuThreadCount(),
  );
  const stepsPerEpoch = Math.floor(source.images / batchSize);
  const totalSteps = options.epochs * stepsPerEpoch;
  const warmupSteps = Math.max(1, Math.round(options.warmupEpochs * stepsPerEpoch));
  const budgetMs = options.minutes > 0 ? options.minutes * 60_000 : Infinity;
  const startedAt = Date.now();
  const losses: number[] = [];
  let step = 0;
  let epoch = 0;
  let cancelled = false;
  let outOfTime = false;
  try {
    while (epoch < options.epochs && !cancelled && !outOfTime) {
      const order = createRandom(options.seed * 100_003 + epoch + 1).shuffle(Array.from({ length: source.images }, (_, i) => i));
      for (let stepInEpoch = 0; stepInEpoch < stepsPerEpoch; stepInEpoch++) {
        const elapsedMs = Date.now() - startedAt;
        const progress = Math.max(step / totalSteps, elapsedMs / budgetMs);
        const learningRate = step < warmupSteps ? (options.learningRate * (step + 1)) / warmupSteps : learningRateAt(progress, 0, options.learningRate, options.finalLearningRate);
        const batch = order.slice(stepInEpoch * batchSize, (stepInEpoch + 1) * batchSize);
        const crops = await source.cropFeatures(batch, random);
        const { loss, usage } = await headStep(model, optimizer, queue, gradients, crops, batch.length, options, learningRate, step, epoch);
        if (!Number.isFinite(loss)) {
          throw new EngineError('INTERNAL', `Head training diverged at step ${step + 1} (loss ${loss}). Lower the learning rate (now ${options.learningRate}) and train again.`);
        }
        step++;
        losses.push(loss);
        const seconds = Math.max((Date.now() - startedAt) / 1000, 1e-3);
        context.progress({
          phase: 'train',
          fraction: Math.min(1, Math.max(step / totalSteps, (Date.now() - startedAt) / budgetMs)),
          epoch: epoch + 1,
          epochs: options.epochs,
          step,
          totalSteps,
          loss,
          learningRate,
          imagesPerSecond: (step * batchSize) / seconds,
          prototypeUsage: usage,
        });
        await yieldToEventLoop();
        if (context.signal.aborted) {
          cancelled = true;
          break;
        }
        if (Date.now() - startedAt >= budgetMs) {
          outOfTime = true;
          break;
        }
      }
      if (!cancelled && !outOfTime) epoch++;
      await start.onEpochEnd?.({ epoch, step, model, optimizer });
    }
  } catch (error) {
    if (!start.optimizer) optimizer.dispose();
    throw error;
  } finally {
    queue?.dispose();
    await gradients.dispose();
  }
  const recent = losses.slice(-20);
  return {
    model,
    optimizer,
    epochs: epoch,
    steps: step,
    finalLoss: recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : NaN,
    losses,
    imagesPerSecond: (step * batchSize) / Math.max((Date.now() - startedAt) / 1000, 1e-3),
    cancelled,
    stopReason: cancelled ? 'cancelled' : outOfTime ? 'time' : 'epochs',
  };
}

/**
 * One SwAV step on the head: the training step's graph without the backbone (trainingGraph.ts's featuresFrom)
 * gives the swapped loss over the crops' features and the head's gradients; then Adam, the running BatchNorm
 * statistics and the queue, as the full trainer does them.
 */
async function headStep(
  model: SwavModel,
  optimizer: Adam,
  queue: EmbeddingQueue | undefined,
  gradients: OrtStepGradients,
  crops: Float32Array[],
  batch: number,
  options: HeadTrainOptions,
  learningRate: number,
  step: number,
  epoch: number,
): Promise<{ loss: number; usage: number[] }> {
  const updated = startStep(model, step < options.freezePrototypesSteps);
  const queueEmbeddings = queue && epoch >= options.queueStartEpoch ? queue.embeddings() : undefined;
  const joined = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((sum, part) => sum + part.length, 0));
    parts.reduce((offset, part) => (out.set(part, offset), offset + part.length), 0);
    return out;
  };
  const weights = new Map([...trainableVariables(model)].map(([name, v]) => [name, v.values]));
  const result = await gradients.compute({ features: { global: joined(crops.slice(0, 2)), local: crops.length > 2 ? joined(crops.slice(2)) : undefined }, weights, queueEmbeddings });
  optimizer.apply(model.variables, new Map([...result.gradients].filter(([name]) => updated.has(name))), learningRate, options.weightDecay);
  updateRunningStatistics(model, result.statistics);
  if (queue) {
    // This step's embeddings of the two global crops, [batch, D] each, newest first.
    const dims = model.spec.projectionDim;
    queue.push(cropsForAssign.map((crop) => result.globalEmbedding.slice(crop * batch * dims, (crop + 1) * batch * dims)));
  }
  // Prototype usage: each image's best prototype for its first global crop.
  const usage = new Array<number>(options.prototypes).fill(0);
  for (let row = 0; row < batch; row++) {
    const scores = result.globalScores.subarray(row * options.prototypes, (row + 1) * options.prototypes);
    usage[scores.indexOf(Math.max(...scores))] += 1 / batch;
  }
  return { loss: result.loss, usage };
}

/** Embeddings and prototype scores of backbone features [count × F], in eval mode, on the chosen device, in batches. */
export async function embedFeatures(model: SwavModel, features: Float32Array, count: number, batchSize = 1024): Promise<{ embeddings: Float32Array; scores: Float32Array }> {
  const featureDim = features.length / Math.max(1, count);
  const embeddings = new Float32Array(count * model.spec.projectionDim);
  const scores = new Float32Array(count * model.spec.prototypes);
  const weights = weightsOf(model);
  const sessions = new Map<number, OrtModel>();
  try {
    for (let start = 0; start < count; start += batchSize) {
      const rows = Math.min(batchSize, count - start);
      let session = sessions.get(rows);
      if (!session) sessions.set(rows, (session = await OrtModel.open(headGraph(weights, { batch: rows, featureDim }), 'the run’s head (in memory)', { threads: cpuThreadCount() })));
      const out = await session.run({ [names.features]: { data: features.subarray(start * featureDim, (start + rows) * featureDim), dims: [rows, featureDim] } }, [names.embedding, names.scores]);
      embeddings.set(out[names.embedding].data, start * model.spec.projectionDim);
      scores.set(out[names.scores].data, start * model.spec.prototypes);
    }
  } finally {
    for (const session of sessions.values()) await session.dispose();
  }
  return { embeddings, scores };
}
