// The heavy half of a SwAV step on onnxruntime's chosen device: crops, forward, queue scores, Sinkhorn, loss and
// gradients in one session run. The engine keeps its parameter store, Adam, the queue and the augmentation's
// random draws; this turns the decoded batch, the draws and the weights into a loss and gradients.

import { EngineError } from '../errors';
import type { ModelSpec } from '../model/model';
import { OrtModel, type OrtArray } from '../runtime/session';
import { buildTrainingGraph, trainingGraphNames as names, type SwapLossSettings, type TrainingGraphShape } from './stepGraph';

/** Each pass's crop boxes and colour draws, [crops · batch, 4] each (runtime/augmentGraph.ts). */
export interface CropDraws {
  boxes: Float32Array;
  colours: Float32Array;
}

export interface StepInputs {
  /** The decoded batch, NHWC pixels in [0, 1], with each pass's crop draws; or, for a head-only step, each pass's features. */
  images?: Float32Array;
  global?: CropDraws;
  local?: CropDraws;
  /** A frozen backbone's features of the global and the local crops, [crops · batch, featureDim] each. */
  features?: { global: Float32Array; local?: Float32Array };
  /** Values of every trainable variable, by name. */
  weights: Map<string, Float32Array>;
  /** Queued embeddings [rows, projectionDim] of each assigned crop, when the queue is in use. */
  queueEmbeddings?: Float32Array[];
}

export interface StepGradients {
  loss: number;
  gradients: Map<string, Float32Array>;
  /** [globalCrops × batch, projectionDim] */
  globalEmbedding: Float32Array;
  /** [globalCrops × batch, prototypes] */
  globalScores: Float32Array;
  /** Batch mean and (biased) variance of each BatchNorm layer over the global crops. */
  statistics: Map<string, { mean: Float32Array; variance: Float32Array; count: number }>;
}

export class OrtStepGradients {
  /** One session per queue length (0: none), built on first use. */
  private readonly sessions = new Map<number, Promise<{ model: OrtModel; variables: string[]; batchNormLayers: { layer: string; positions: number }[] }>>();

  constructor(
    private readonly spec: ModelSpec,
    private readonly variableShapes: Map<string, number[]>,
    private readonly shape: Omit<TrainingGraphShape, 'queueRows'>,
    private readonly loss: SwapLossSettings,
    private readonly threads: number,
  ) {}

  get batch(): number {
    return this.shape.batch;
  }

  private session(queueRows: number) {
    let session = this.sessions.get(queueRows);
    if (!session) {
      session = (async () => {
        const graph = buildTrainingGraph(this.spec, this.variableShapes, { ...this.shape, queueRows }, this.loss);
        try {
          const model = await OrtModel.open(graph.bytes, 'the SwAV training step', { threads: this.threads });
          return { model, variables: graph.variables, batchNormLayers: graph.batchNormLayers };
        } catch (error) {
          throw runtimeFailure(error);
        }
      })();
      this.sessions.set(queueRows, session);
    }
    return session;
  }

  async compute(inputs: StepInputs): Promise<StepGradients> {
    const { batch, globalCrops, localCrops, cropsFrom, featuresFrom } = this.shape;
    const channels = this.spec.channels;
    const projectionDim = this.variableShapes.get('prototypes')![1];
    const queueRows = inputs.queueEmbeddings ? inputs.queueEmbeddings[0].length / projectionDim : 0;
    const { model, variables, batchNormLayers } = await this.session(queueRows);
    const feeds: Record<string, OrtArray> = {};
    if (featuresFrom) {
      feeds[names.features('global')] = { data: inputs.features!.global, dims: [globalCrops * batch, featuresFrom.featureDim] };
      if (localCrops > 0) feeds[names.features('local')] = { data: inputs.features!.local!, dims: [localCrops * batch, featuresFrom.featureDim] };
    } else if (cropsFrom) {
      feeds[names.images] = { data: inputs.images!, dims: [batch, cropsFrom.imageSizePx, cropsFrom.imageSizePx, channels] };
      for (const [pass, crops, draws] of [['global', globalCrops, inputs.global], ['local', localCrops, inputs.local]] as const) {
        if (crops === 0) continue;
        feeds[names.boxes(pass)] = { data: draws!.boxes, dims: [crops * batch, 4] };
        feeds[names.colours(pass)] = { data: draws!.colours, dims: [crops * batch, 4] };
      }
    } else {
      throw new Error('the training step needs images to crop or features');
    }
    for (const name of variables) feeds[name] = { data: inputs.weights.get(name)!, dims: this.variableShapes.get(name)! };
    inputs.queueEmbeddings?.forEach((rows, position) => (feeds[names.queueEmbeddings(position)] = { data: rows, dims: [queueRows, projectionDim] }));
    const outputs = [
      names.loss,
      names.globalEmbedding,
      names.globalScores,
      ...variables.map(names.gradient),
      ...batchNormLayers.flatMap(({ layer }) => [names.batchMean(layer), names.batchVariance(layer)]),
    ];
    let result: Record<string, OrtArray>;
    try {
      result = await model.run(feeds, outputs);
    } catch (error) {
      throw runtimeFailure(error);
    }
    return {
      loss: result[names.loss].data[0],
      gradients: new Map(variables.map((name) => [name, result[names.gradient(name)].data])),
      globalEmbedding: result[names.globalEmbedding].data,
      globalScores: result[names.globalScores].data,
      statistics: new Map(
        batchNormLayers.map(({ layer, positions }) => [layer, { mean: result[names.batchMean(layer)].data, variance: result[names.batchVariance(layer)].data, count: positions }]),
      ),
    };
  }

  async dispose(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const session of sessions) await (await session).model.dispose();
  }
}

/** onnxruntime refused the step's graph: a bug of ours, with a way to keep training meanwhile. */
function runtimeFailure(error: unknown): EngineError {
  // The engine's own errors (onnxruntime missing, a model it refused) already say what to do.
  if (error instanceof EngineError) return error;
  const reason = (error as Error).message.split('\n')[0];
  return new EngineError(
    'INTERNAL',
    `onnxruntime could not run the training step (${reason}). Train with --device cpu (setting clusterLens.device: cpu) meanwhile, and please report this.`,
    String(error),
  );
}
