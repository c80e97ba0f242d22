// One SwAV training step as an ONNX graph: the crops of the decoded batch (runtime/augmentGraph.ts), the
// network (model/layout.ts) on the global and the local crops, Sinkhorn codes (sinkhorn.ts), the swapped loss
// (loss.ts), and the gradient of every trainable weight. Adam, the queue and the running BatchNorm statistics
// stay with the engine's parameter store.

import { batchNormEpsilon, emitHead, emitNetwork, type NetworkOps } from '../model/layout';
import type { ModelSpec } from '../model/model';
import { encodeModel } from '../onnx/schema';
import { emitCropViews } from '../runtime/augmentGraph';
import { DifferentiableGraph } from '../runtime/autodiff';
import { swapLoss, type SwapLossSettings } from './loss';
import { sinkhorn } from './sinkhorn';

export type { SwapLossSettings };

export interface TrainingGraphShape {
  /** Images per crop. */
  batch: number;
  globalCrops: number;
  globalSizePx: number;
  localCrops: number;
  localSizePx: number;
  /** Rows of past embeddings, scored against the prototypes for each assigned crop's Sinkhorn (0: no queue inputs). */
  queueRows: number;
  /**
   * Crops made in the graph from the decoded batch [batch, S, S, C] (inputs `images`, and each pass's boxes and
   * colour draws); absent: the crops themselves are the inputs.
   */
  cropsFrom?: { imageSizePx: number; jitter: boolean };
  /**
   * A frozen backbone's features [crops · batch, featureDim] as each pass's input (`features.global`,
   * `features.local`): the step is the head's alone, with no backbone and no crops in the graph.
   */
  featuresFrom?: { featureDim: number };
}

/** Names of the graph's inputs and outputs. */
export const trainingGraphNames = {
  globalCrops: 'crops.global',
  localCrops: 'crops.local',
  /** The decoded batch, NHWC in [0, 1], when the graph makes the crops. */
  images: 'images',
  /** [crops · batch, 4] crop boxes and [crops · batch, 4] colour draws of each pass (see augmentGraph.ts). */
  boxes: (pass: 'global' | 'local') => `boxes.${pass}`,
  colours: (pass: 'global' | 'local') => `colours.${pass}`,
  features: (pass: 'global' | 'local') => `features.${pass}`,
  /** [queueRows, projectionDim] past embeddings of assigned crop `position`, newest first. */
  queueEmbeddings: (position: number) => `queue.embeddings.${position}`,
  loss: 'loss',
  gradient: (variable: string) => `gradient.${variable}`,
  globalEmbedding: 'embedding.global',
  globalScores: 'scores.global',
  batchMean: (layer: string) => `batchnorm.${layer}.mean`,
  batchVariance: (layer: string) => `batchnorm.${layer}.variance`,
};


export interface TrainingGraph {
  bytes: Uint8Array;
  /** Trainable variables, fed as inputs by these names, in the engine's layouts. */
  variables: string[];
  /** BatchNorm layers whose global-crop batch statistics are outputs, with the positions each averages over. */
  batchNormLayers: { layer: string; positions: number }[];
}

/**
 * The step's graph for `spec` and fixed shapes. Inputs: NHWC crops in [0, 1] (normalisation is inside),
 * every trainable variable by name, and queued embeddings when `shape.queueRows` > 0. Outputs: the loss, one
 * gradient per variable, the global crops' embeddings and scores, and their BatchNorm batch statistics.
 */
export function buildTrainingGraph(spec: ModelSpec, variableShapes: Map<string, number[]>, shape: TrainingGraphShape, loss: SwapLossSettings): TrainingGraph {
  const graph = new DifferentiableGraph();
  const names = trainingGraphNames;
  const variables = [...variableShapes.keys()];
  for (const name of variables) graph.input(name, variableShapes.get(name)!, true);
  const batchNormLayers: { layer: string; positions: number }[] = [];

  const source = shape.cropsFrom && graph.input(names.images, [shape.batch, shape.cropsFrom.imageSizePx, shape.cropsFrom.imageSizePx, spec.channels], false);
  const sourceNchw = source && graph.op('Transpose', [source], [shape.batch, spec.channels, shape.cropsFrom!.imageSizePx, shape.cropsFrom!.imageSizePx], { perm: [0, 3, 1, 2] });
  const network = (pass: 'global' | 'local', crops: number, sizePx: number, recordStatistics: boolean) => {
    const n = crops * shape.batch;
    const c = spec.channels;
    const batchNorm = (x: string, layer: string) => {
      const { y, mean, variance } = graph.batchNorm(x, `${layer}.gamma`, `${layer}.beta`, batchNormEpsilon);
      if (recordStatistics) {
        graph.output(mean, names.batchMean(layer));
        graph.output(variance, names.batchVariance(layer));
        const xShape = graph.shape(x);
        batchNormLayers.push({ layer, positions: xShape.reduce((a, b) => a * b, 1) / xShape[1] });
      }
      return y;
    };
    // Train mode: every BatchNorm normalises with its batch's statistics; the weights are the graph's inputs.
    const ops: NetworkOps<string> = {
      convBatchNorm: (x, layer) => batchNorm(graph.conv2d(x, layer.conv, layer.stride), layer.batchNorm),
      relu: (x) => graph.relu(x),
      add: (a, b) => graph.add(a, b),
      pool: (x) => graph.spatialMean(x),
      linearBatchNorm: (x, linear, norm) => batchNorm(graph.dense(x, `${linear}.weight`, `${linear}.bias`), norm),
      linear: (x, name) => graph.dense(x, `${name}.weight`, `${name}.bias`),
      l2Normalize: (x) => graph.l2NormalizeRows(x),
      prototypeScores: (embedding) => graph.matMulTransposed(embedding, 'prototypes'),
    };
    if (shape.featuresFrom) return emitHead(ops, graph.input(names.features(pass), [n, shape.featuresFrom.featureDim], false));
    const nchw = sourceNchw
      ? emitCropViews(graph, sourceNchw, { views: crops, sizePx, boxes: names.boxes(pass), colours: names.colours(pass), jitter: shape.cropsFrom!.jitter })
      : graph.op('Transpose', [graph.input(pass === 'global' ? names.globalCrops : names.localCrops, [n, sizePx, sizePx, c], false)], [n, c, sizePx, sizePx], { perm: [0, 3, 1, 2] });
    const centred = graph.op('Sub', [nchw, graph.floats(spec.inputMean, [1, c, 1, 1])], [n, c, sizePx, sizePx]);
    const normalized = graph.op('Div', [centred, graph.floats(spec.inputStd, [1, c, 1, 1])], [n, c, sizePx, sizePx]);
    const { embedding, scores } = emitNetwork(spec, ops, normalized);
    return { embedding, scores };
  };

  const global = graph.tagged('global/', () => network('global', shape.globalCrops, shape.globalSizePx, true));
  const passes = [{ scores: global.scores, crops: shape.globalCrops }];
  if (shape.localCrops > 0) passes.push({ scores: graph.tagged('local/', () => network('local', shape.localCrops, shape.localSizePx, false)).scores, crops: shape.localCrops });
  graph.output(global.embedding, names.globalEmbedding);
  graph.output(global.scores, names.globalScores);

  // Each crop's [B, K] scores, as rows of its pass's output.
  const prototypes = variableShapes.get('prototypes')![0];
  const rows = [shape.batch, prototypes];
  const cropScores = passes.flatMap(({ scores, crops }) =>
    Array.from({ length: crops }, (_, i) => graph.op('Slice', [scores, graph.ints([i * shape.batch]), graph.ints([(i + 1) * shape.batch]), graph.ints([0])], rows)),
  );
  // The queue's scores against this step's prototypes; plain ops, so no gradient flows through them (SwAV
  // scores its queue under no_grad).
  const projectionDim = variableShapes.get('prototypes')![1];
  let prototypesTransposed: string | undefined;
  const queueScores = (position: number) => {
    prototypesTransposed ??= graph.op('Transpose', ['prototypes'], [projectionDim, prototypes], { perm: [1, 0] });
    return graph.op('MatMul', [graph.input(names.queueEmbeddings(position), [shape.queueRows, projectionDim], false), prototypesTransposed], [shape.queueRows, prototypes]);
  };
  const swapped = swapLoss(graph, cropScores, loss, (scores, position) =>
    sinkhorn(graph, scores, shape.queueRows > 0 ? queueScores(position) : undefined, { epsilon: loss.epsilon, iterations: loss.sinkhornIterations }),
  );
  graph.output(swapped.loss, names.loss);
  const scoreGradients = swapped.scoreGradients;

  let view = 0;
  const seeds: [string, string][] = passes.map(({ scores, crops }) => {
    const parts = Array.from({ length: crops }, () => scoreGradients[view++]);
    return [scores, parts.length === 1 ? parts[0] : graph.op('Concat', parts, [crops * shape.batch, prototypes], { axis: 0 })];
  });
  graph.backward(seeds);
  for (const name of variables) graph.output(graph.gradient(name), names.gradient(name));

  const bytes = encodeModel({
    irVersion: 8,
    producerName: 'cluster-lens',
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'swav_training_step', node: graph.nodes, initializer: graph.initializers, input: graph.inputs, output: graph.outputs },
  });
  return { bytes, variables, batchNormLayers };
}
