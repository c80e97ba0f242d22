// The explanations' gradient graphs, so that Grad-CAM and each counterfactual step run as one onnxruntime
// session.run on the chosen device: the engine's network in eval mode (BatchNorm folded into the layer
// before it, as explain/network.ts does), then what Grad-CAM (explain/gradCam.ts) and the counterfactual
// (explain/counterfactual.ts) compute on top of it, with the same equations.

import { emitHead, emitNetwork, foldBatchNorm, scaleOutputs, type NetworkOps } from '../model/layout';
import type { ModelSpec } from '../model/model';
import type { WeightMap } from '../onnx/export';
import { encodeModel } from '../onnx/schema';
import { DifferentiableGraph } from './autodiff';
import { combinedOpset, emitBackbone, type ImportedBackbone } from './importedGraph';

/** Names of the graphs' inputs and outputs. */
export const explainGraphNames = {
  images: 'images',
  /** One-hot [N, K]: row n's target prototype (Grad-CAM), or the target cluster (counterfactual). */
  target: 'target',
  scores: 'scores',
  /** L2-normalised projections [N, D] (headGraph). */
  embedding: 'embedding',
  /** Pooled backbone features [N, F]: the feature map's spatial mean. */
  features: 'features',
  featureMap: 'feature_map',
  featureGradient: 'feature_gradient',
  heatmap: 'heatmap',
  original: 'original',
  firstMoment: 'first_moment',
  secondMoment: 'second_moment',
  /** [2]: Adam's bias corrections 1 − β1^t and 1 − β2^t of the step about to be taken. */
  corrections: 'corrections',
  probabilities: 'probabilities',
  /** [N]: the mask counterfactual's classification term per image (maskGradientGraph). */
  loss: 'loss',
  /** [N, S, S, C]: that term's (or the target's) gradient at the images. */
  imageGradient: 'image_gradient',
  /** [N, F]: the features each image's cosine is taken with (similarity targets). */
  reference: 'reference',
  /** [N]: each image's target, a prototype score or a cosine. */
  value: 'value',
  next: (input: string) => `${input}.next`,
  /** Layer `index`'s attention [N, heads, T, T] (an imported transformer's Softmax outputs, in graph order). */
  attention: (index: number) => `attention_${index}`,
};
const names = explainGraphNames;

/** A layer (with its own bias, if it has one) and its eval BatchNorm folded in (model/layout.ts's foldBatchNorm). */
function folded(weights: WeightMap, layer: string, batchNorm: string, ownBias?: Float32Array): { weight: Float32Array; bias: Float32Array; shape: number[] } {
  const get = (name: string) => {
    const found = weights.get(name);
    if (!found) throw new Error(`the model has no weight ${name}`);
    return found;
  };
  const { shape, values } = get(layer);
  const [gamma, beta, mean, variance] = ['gamma', 'beta', 'runningMean', 'runningVariance'].map((suffix) => get(`${batchNorm}.${suffix}`).values);
  const { scale, bias } = foldBatchNorm({ gamma, beta, mean, variance }, ownBias);
  return { weight: scaleOutputs(values, scale), bias, shape };
}

/**
 * A network as the explanation graphs see it: from NHWC `images` in [0, 1] to the Grad-CAM layer (a watch point
 * when asked), the pooled features [N, F] and the prototype scores [N, K]. `toMap` turns the layer, or its
 * gradient, into an NCHW map [N, C, h, w] (a ViT's patch tokens reshaped to their grid).
 */
export interface ExplainNetwork {
  channels: number;
  prototypes: number;
  emit(graph: DifferentiableGraph, images: string, watchLayer: boolean): { layer: string; toMap: (value: string) => string; features: string; scores: string };
}

/** The engine's own network in eval mode; its last feature map is the Grad-CAM layer. */
export function ownNetwork(spec: ModelSpec, weights: WeightMap): ExplainNetwork {
  return {
    channels: spec.channels,
    prototypes: spec.prototypes,
    emit: (graph, images, watchLayer) => {
      const { featureMap, features, scores } = evalNetwork(graph, spec, weights, images, watchLayer);
      return { layer: featureMap, toMap: (value) => value, features, scores };
    },
  };
}

/** How the explanation graphs build the network: eval mode, each BatchNorm folded into the layer before it, the weights constants. */
function evalOps(graph: DifferentiableGraph, weights: WeightMap): NetworkOps<string> {
  const weight = (name: string) => {
    const found = weights.get(name);
    if (!found) throw new Error(`the model has no weight ${name}`);
    return found;
  };
  return {
    convBatchNorm: (x, layer) => {
      const { weight: filter, bias, shape } = folded(weights, layer.conv, layer.batchNorm);
      return graph.add(graph.conv2d(x, graph.floats(filter, shape), layer.stride), graph.floats(bias, [1, shape[3], 1, 1]));
    },
    relu: (x) => graph.relu(x),
    add: (a, b) => graph.add(a, b),
    pool: (x) => graph.spatialMean(x),
    linearBatchNorm: (x, linear, norm) => {
      const { weight: matrix, bias, shape } = folded(weights, `${linear}.weight`, norm, weight(`${linear}.bias`).values);
      return graph.dense(x, graph.floats(matrix, shape), graph.floats(bias, [shape[1]]));
    },
    linear: (x, name) => {
      const { shape, values } = weight(`${name}.weight`);
      return graph.dense(x, graph.floats(values, shape), graph.floats(weight(`${name}.bias`).values, [shape[1]]));
    },
    l2Normalize: (x) => graph.l2NormalizeRows(x),
    prototypeScores: (embedding) => {
      const { shape, values } = weight('prototypes');
      return graph.matMulTransposed(embedding, graph.floats(values, shape));
    },
  };
}

/** The network in eval mode on NHWC `images`: the last feature map (NCHW, a Grad-CAM watch point when asked), its spatial mean (the features) and the scores. */
function evalNetwork(graph: DifferentiableGraph, spec: ModelSpec, weights: WeightMap, images: string, watchFeatureMap: boolean): { featureMap: string; features: string; scores: string } {
  const channels = spec.channels;
  const perChannel = (values: number[]) => graph.floats(values, [1, channels, 1, 1]);
  const nchw = graph.transpose(images, [0, 3, 1, 2]);
  // (x − mean) / std as x · (1/std) − mean/std
  const x = graph.scaleShift(nchw, perChannel(spec.inputStd.map((std) => 1 / std)), perChannel(spec.inputMean.map((mean, c) => -mean / spec.inputStd[c])));
  const { featureMap, features, scores } = emitNetwork(spec, evalOps(graph, weights), x, (map) => (watchFeatureMap ? graph.watch(map) : map));
  return { featureMap, features, scores };
}

/** Where Grad-CAM looks in an imported backbone: a feature map [N, C, h, w], or tokens [N, T, D] whose last grid² are the patches. */
export type ImportedLayer = { name: string; kind: 'map' } | { name: string; kind: 'tokens'; prefixTokens: number; grid: number };

/**
 * An imported backbone (its nodes copied, differentiated by importedGraph.ts) with the run's head: images are
 * normalised by `input` as onnxruntime's feature path does, a feature map output is averaged over its positions.
 * `layer` is the error that says why there is none where the graph has no layer to explain at: every graph but
 * those taken at the layer still builds.
 */
export function importedNetwork(backbone: ImportedBackbone, weights: WeightMap, input: { channels: number; mean: number[]; std: number[] }, prototypes: number, layer: ImportedLayer | Error, featureDims: number[]): ExplainNetwork {
  return {
    channels: input.channels,
    prototypes,
    emit: (graph, images, watchLayer) => {
      if (watchLayer && layer instanceof Error) throw layer;
      const layerName = layer instanceof Error ? undefined : layer.name;
      const perChannel = (values: number[]) => graph.floats(values, [1, input.channels, 1, 1]);
      const nchw = graph.transpose(images, [0, 3, 1, 2]);
      const x = graph.scaleShift(nchw, perChannel(input.std.map((std) => 1 / std)), perChannel(input.mean.map((mean, c) => -mean / input.std[c])));
      const values = emitBackbone(graph, backbone, x, layerName ? [backbone.featureOutput, layerName] : [backbone.featureOutput], watchLayer ? layerName : undefined);
      const output = values.get(backbone.featureOutput)!;
      const batch = graph.shape(images)[0];
      graph.declareShape(output, [batch, ...featureDims]);
      const features = featureDims.length === 3 ? graph.spatialMean(output) : output;
      const toMap = (value: string): string => {
        if (layer instanceof Error || layer.kind === 'map') return value;
        const [n, tokens, width] = graph.shape(value);
        const patches = graph.op('Slice', [value, graph.ints([layer.prefixTokens]), graph.ints([tokens]), graph.ints([1])], [n, tokens - layer.prefixTokens, width]);
        const grid = graph.op('Reshape', [patches, graph.ints([n, layer.grid, layer.grid, width])], [n, layer.grid, layer.grid, width]);
        return graph.op('Transpose', [grid], [n, width, layer.grid, layer.grid], { perm: [0, 3, 1, 2] });
      };
      // Without a layer the features stand in for it: only graphs taken at the layer read it, and they refuse above.
      return { layer: layerName ? values.get(layerName)! : features, toMap, features, scores: evalHead(graph, weights, features) };
    },
  };
}

/** Builds one network's explanation graphs; the sessions opened on them are kept for `owner`. */
export interface ExplainGraphs {
  owner: object;
  /** The engine's own network, or an imported backbone (whose images cost as much one by one as batched on a CPU). */
  kind: 'own' | 'imported';
  channels: number;
  prototypes: number;
  forward(dims: { batch: number; imageSizePx: number }): Promise<Uint8Array>;
  /** targetGradientGraph for this network. */
  targetGradient(settings: TargetGradientSettings): Promise<Uint8Array>;
  counterfactual(settings: CounterfactualSettings): Promise<Uint8Array>;
  /** maskGradientGraph for this network. */
  maskGradient(settings: MaskGradientSettings): Promise<Uint8Array>;
  /** A transformer's forward pass with every layer's attention as outputs (explainGraphNames.attention); absent for CNNs. */
  attention?(imageSizePx: number): Promise<{ bytes: Uint8Array; layers: number; prefixTokens: number; grid: number }>;
}

/**
 * The images' attention maps: `network` up to the features, with the imported values `attentions` (Softmax
 * outputs) as outputs; their shapes come from the backbone's probe.
 */
export function attentionGraph(backbone: ImportedBackbone, input: { channels: number; mean: number[]; std: number[] }, attentions: string[], imageSizePx: number): Uint8Array {
  const graph = new DifferentiableGraph();
  const images = graph.input(names.images, [1, imageSizePx, imageSizePx, input.channels], false);
  const perChannel = (values: number[]) => graph.floats(values, [1, input.channels, 1, 1]);
  const nchw = graph.transpose(images, [0, 3, 1, 2]);
  const x = graph.scaleShift(nchw, perChannel(input.std.map((std) => 1 / std)), perChannel(input.mean.map((mean, c) => -mean / input.std[c])));
  const values = emitBackbone(graph, backbone, x, attentions);
  attentions.forEach((name, index) => {
    const value = values.get(name)!;
    graph.declareShape(value, backbone.probe.get(name)!.dims);
    graph.output(value, names.attention(index));
  });
  return encode(graph, 'cluster_lens_attention');
}

/** The SwAV head in eval mode on features [N, F]: the prototype scores [N, K]. */
export function evalHead(graph: DifferentiableGraph, weights: WeightMap, features: string): string {
  return emitHead(evalOps(graph, weights), features).scores;
}

/** The SwAV head alone in eval mode, for `batch` rows of backbone features [N, F]: the embeddings [N, D] and the scores [N, K]. */
export function headGraph(weights: WeightMap, { batch, featureDim }: { batch: number; featureDim: number }): Uint8Array {
  const graph = new DifferentiableGraph();
  const { embedding, scores } = emitHead(evalOps(graph, weights), graph.input(names.features, [batch, featureDim], false));
  graph.output(embedding, names.embedding);
  graph.output(scores, names.scores);
  return encode(graph, 'cluster_lens_head');
}

function encode(graph: DifferentiableGraph, name: string): Uint8Array {
  return encodeModel({
    irVersion: 8,
    producerName: 'cluster-lens',
    // Imported backbones' nodes are rewritten to this opset (importedGraph.ts).
    opsetImport: [{ domain: '', version: combinedOpset }],
    graph: { name, node: graph.nodes, initializer: graph.initializers, input: graph.inputs, output: graph.outputs },
  });
}

/** The forward pass alone, for `batch` images [N, S, S, C] in [0, 1]: the features [N, F] and the scores [N, K]. */
export function buildForwardGraph(spec: ModelSpec, weights: WeightMap, dims: { batch: number; imageSizePx: number }): Uint8Array {
  return forwardGraph(ownNetwork(spec, weights), dims);
}

/** buildForwardGraph for any network. */
export function forwardGraph(network: ExplainNetwork, { batch, imageSizePx }: { batch: number; imageSizePx: number }): Uint8Array {
  const graph = new DifferentiableGraph();
  const images = graph.input(names.images, [batch, imageSizePx, imageSizePx, network.channels], false);
  const { features, scores } = network.emit(graph, images, false);
  graph.output(features, names.features);
  graph.output(scores, names.scores);
  return encode(graph, 'cluster_lens_forward');
}

export interface TargetGradientSettings {
  batch: number;
  imageSizePx: number;
  /** A prototype's score (input `target`, one-hot [N, K]), or the cosine of the features with `reference` [N, F]. */
  target: 'prototype' | 'similarity';
  /** Where the gradient is taken: the explanation layer (CAMs) or the input pixels (gradient methods). */
  wrt: 'layer' | 'image';
}

/**
 * The target y_n of each of `batch` images [N, S, S, C] in [0, 1], and its gradient: y_n = Σ_k target_nk · s_nk
 * (a prototype's score), or y_n = cos(f_n, r_n) with reference features r_n held fixed (a similarity; the pair
 * gets its own row, with the image's features as its reference). Outputs `value` [N], the scores and features,
 * and either the layer as a map [N, C, h, w] with ∂y/∂layer, or ∂y/∂images [N, S, S, C].
 */
export function targetGradientGraph(network: ExplainNetwork, { batch, imageSizePx, target, wrt }: TargetGradientSettings): Uint8Array {
  const graph = new DifferentiableGraph();
  const images = graph.input(names.images, [batch, imageSizePx, imageSizePx, network.channels], wrt === 'image');
  const { layer, toMap, features, scores } = network.emit(graph, images, wrt === 'layer');
  const column = [batch, 1];
  let value: string;
  if (target === 'prototype') {
    const oneHot = graph.input(names.target, [batch, network.prototypes], false);
    value = graph.op('ReduceSum', [graph.op('Mul', [scores, oneHot], [batch, network.prototypes]), graph.ints([1])], column, { keepdims: 1 });
    graph.backward([[scores, oneHot]]);
  } else {
    const width = graph.shape(features);
    const reference = graph.input(names.reference, width, false);
    // cos = f·r / max(|f||r|, 1e-12), as cosineRows; ∂cos/∂f = r / max(|f||r|, 1e-12) − cos · f / |f|²
    const sumOver = (x: string) => graph.op('ReduceSum', [x, graph.ints([1])], column, { keepdims: 1 });
    const squaredNorm = (x: string) => graph.op('ReduceSumSquare', [x], column, { axes: [1], keepdims: 1 });
    const featureNorm2 = squaredNorm(features);
    const denominator = graph.op('Max', [graph.op('Sqrt', [graph.op('Mul', [featureNorm2, squaredNorm(reference)], column)], column), graph.scalar(1e-12)], column);
    value = graph.op('Div', [sumOver(graph.op('Mul', [features, reference], width)), denominator], column);
    const seed = graph.op(
      'Sub',
      [graph.op('Div', [reference, denominator], width), graph.op('Mul', [value, graph.op('Div', [features, graph.op('Max', [featureNorm2, graph.scalar(1e-24)], column)], width)], width)],
      width,
    );
    graph.backward([[features, seed]]);
  }
  graph.output(graph.op('Reshape', [value, graph.ints([batch])], [batch]), names.value);
  graph.output(scores, names.scores);
  graph.output(features, names.features);
  if (wrt === 'layer') {
    graph.output(toMap(layer), names.featureMap);
    graph.output(toMap(graph.gradient(layer)), names.featureGradient);
  } else {
    graph.output(graph.gradient(images), names.imageGradient);
  }
  return encode(graph, `cluster_lens_${target}_gradient`);
}

export interface CounterfactualSettings {
  imageSizePx: number;
  temperature: number;
  mseWeight: number;
  tvWeight: number;
  l2Weight: number;
  learningRate: number;
  beta1: number;
  beta2: number;
  adamEpsilon: number;
}

/**
 * One counterfactual step on the edited image x [1, S, S, C]: the probabilities softmax(scores / T) at x, and
 * one Adam step on −log p(target | x) + λ·MSE(x, x₀) + λ_tv·TV(x) + μ·√(‖x − x₀‖² + 1e-12), x clamped to [0, 1].
 * The pixel terms' gradients are written out, with |d|' = −1 at d = 0 (TensorFlow.js's convention, kept so that
 * edits repeat those of earlier versions).
 */
export function buildCounterfactualGraph(spec: ModelSpec, weights: WeightMap, settings: CounterfactualSettings): Uint8Array {
  return counterfactualGraph(ownNetwork(spec, weights), settings);
}

/** buildCounterfactualGraph for any network. */
export function counterfactualGraph(network: ExplainNetwork, settings: CounterfactualSettings): Uint8Array {
  const spec = { channels: network.channels, prototypes: network.prototypes };
  const graph = new DifferentiableGraph();
  const size = settings.imageSizePx;
  const image = [1, size, size, spec.channels];
  const count = image.reduce((a, b) => a * b, 1);
  const edited = graph.input(names.images, image, true);
  const original = graph.input(names.original, image, false);
  const firstMoment = graph.input(names.firstMoment, image, false);
  const secondMoment = graph.input(names.secondMoment, image, false);
  const corrections = graph.input(names.corrections, [2], false);
  const target = graph.input(names.target, [1, spec.prototypes], false);
  const { scores } = network.emit(graph, edited, false);

  // log softmax(s/T) written out (WebGPU has no LogSoftmax); ∂(−log p_t)/∂s = (p − onehot_t) / T
  const row = [1, spec.prototypes];
  const z = graph.op('Div', [scores, graph.scalar(settings.temperature)], row);
  const shifted = graph.op('Sub', [z, graph.op('ReduceMax', [z], [1, 1], { axes: [1], keepdims: 1 })], row);
  const logSum = graph.op('Log', [graph.op('ReduceSum', [graph.op('Exp', [shifted], row), graph.ints([1])], [1, 1], { keepdims: 1 })], [1, 1]);
  const probabilities = graph.op('Exp', [graph.op('Sub', [shifted, logSum], row)], row);
  graph.backward([[scores, graph.op('Div', [graph.op('Sub', [probabilities, target], row), graph.scalar(settings.temperature)], row)]]);

  const op = (type: string, inputs: string[]) => graph.op(type, inputs, image);
  const change = op('Sub', [edited, original]);
  // ∂MSE = 2Δ / count; ∂√(‖Δ‖² + ε) = Δ / √(‖Δ‖² + ε)
  const norm = graph.op('Sqrt', [graph.op('Add', [graph.op('ReduceSumSquare', [change], [], { keepdims: 0 }), graph.scalar(1e-12)], [])], []);
  const pixelTerms = [
    op('Mul', [change, graph.scalar((2 * settings.mseWeight) / count)]),
    op('Mul', [change, graph.op('Div', [graph.scalar(settings.l2Weight), norm], [])]),
    ...[1, 2].map((axis) => totalVariationGradient(graph, edited, axis, settings.tvWeight)),
  ];
  const gradient = [graph.gradient(edited), ...pixelTerms].reduce((sum, term) => op('Add', [sum, term]));

  // Adam: m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g², x ← clamp(x − lr·m̂ / (√v̂ + ε), 0, 1)
  const correction = (index: number) => graph.op('Slice', [corrections, graph.ints([index]), graph.ints([index + 1]), graph.ints([0])], [1]);
  const first = op('Add', [op('Mul', [firstMoment, graph.scalar(settings.beta1)]), op('Mul', [gradient, graph.scalar(1 - settings.beta1)])]);
  const second = op('Add', [op('Mul', [secondMoment, graph.scalar(settings.beta2)]), op('Mul', [op('Mul', [gradient, gradient]), graph.scalar(1 - settings.beta2)])]);
  const update = op('Div', [op('Div', [first, correction(0)]), op('Add', [op('Sqrt', [op('Div', [second, correction(1)])]), graph.scalar(settings.adamEpsilon)])]);
  const stepped = op('Sub', [edited, op('Mul', [update, graph.scalar(settings.learningRate)])]);
  graph.output(op('Clip', [stepped, graph.scalar(0), graph.scalar(1)]), names.next(names.images));
  graph.output(first, names.next(names.firstMoment));
  graph.output(second, names.next(names.secondMoment));
  graph.output(probabilities, names.probabilities);
  graph.output(scores, names.scores);
  return encode(graph, 'cluster_lens_counterfactual_step');
}

/**
 * ∂/∂x of λ · mean |x[i+1] − x[i]| along `axis` (1: rows, 2: columns) of NHWC x: each difference d adds
 * ±λ/count at i+1 and ∓λ/count at i, with sign(d) taken as tfjs's Abs gradient does (+1 if d > 0, else −1).
 */
function totalVariationGradient(graph: DifferentiableGraph, x: string, axis: number, weight: number): string {
  const shape = graph.shape(x);
  const inner = shape.map((size, i) => (i === axis ? size - 1 : size));
  const slice = (start: number) => graph.op('Slice', [x, graph.ints([start]), graph.ints([start + shape[axis] - 1]), graph.ints([axis])], inner);
  const difference = graph.op('Sub', [slice(1), slice(0)], inner);
  const unit = weight / inner.reduce((a, b) => a * b, 1);
  const sign = graph.op('Where', [graph.op('Greater', [difference, graph.scalar(0)], inner), graph.scalar(unit), graph.scalar(-unit)], inner);
  // Pads are [begins…, ends…]: + shifted to i+1 (one before), − in place at i (one after).
  const pad = (before: number) => graph.ints([...shape.map((_, i) => (i === axis ? before : 0)), ...shape.map((_, i) => (i === axis ? 1 - before : 0))]);
  return graph.op('Sub', [graph.op('Pad', [sign, pad(1)], shape), graph.op('Pad', [sign, pad(0)], shape)], shape);
}

export interface MaskGradientSettings {
  batch: number;
  imageSizePx: number;
  temperature: number;
}

/**
 * The mask counterfactual's classification term (explain/maskCounterfactual.ts) for a batch of blended images x′
 * [N, S, S, C] and one-hot targets [N, K]: per image softplus(1 − margin), margin = z_t − log Σ_{k≠t} exp z_k with
 * z = scores / T (the other clusters as z + onehot·(−1e4)), and the gradient of its sum at x′.
 * ∂softplus(1 − margin)/∂z = σ(1 − margin)·(q − onehot), q the softmax over the other clusters. The blend, the
 * mask's upsampling and its area and TV terms are small and stay with the caller.
 */
export function maskGradientGraph(network: ExplainNetwork, { batch, imageSizePx, temperature }: MaskGradientSettings): Uint8Array {
  const graph = new DifferentiableGraph();
  const images = graph.input(names.images, [batch, imageSizePx, imageSizePx, network.channels], true);
  const target = graph.input(names.target, [batch, network.prototypes], false);
  const { scores } = network.emit(graph, images, false);
  const row = [batch, network.prototypes];
  const column = [batch, 1];
  const z = graph.op('Div', [scores, graph.scalar(temperature)], row);
  const others = graph.op('Add', [z, graph.op('Mul', [target, graph.scalar(-1e4)], row)], row);
  const highest = graph.op('ReduceMax', [others], column, { axes: [1], keepdims: 1 });
  const exps = graph.op('Exp', [graph.op('Sub', [others, highest], row)], row);
  const sum = graph.op('ReduceSum', [exps, graph.ints([1])], column, { keepdims: 1 });
  const logSumOthers = graph.op('Add', [graph.op('Log', [sum], column), highest], column);
  const targetLogit = graph.op('ReduceSum', [graph.op('Mul', [z, target], row), graph.ints([1])], column, { keepdims: 1 });
  const shortfall = graph.op('Sub', [graph.scalar(1), graph.op('Sub', [targetLogit, logSumOthers], column)], column);
  const loss = graph.op('Softplus', [shortfall], column);
  const q = graph.op('Div', [exps, sum], row);
  const seed = graph.op('Div', [graph.op('Mul', [graph.op('Sigmoid', [shortfall], column), graph.op('Sub', [q, target], row)], row), graph.scalar(temperature)], row);
  graph.backward([[scores, seed]]);
  graph.output(graph.op('Reshape', [loss, graph.ints([batch])], [batch]), names.loss);
  graph.output(graph.gradient(images), names.imageGradient);
  graph.output(scores, names.scores);
  return encode(graph, 'cluster_lens_mask_gradient');
}
