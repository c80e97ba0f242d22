import * as tf from '@tensorflow/tfjs-core';
import { batchNormActivation } from '../runtime/tfjs/fusedBatchNorm';

// The composite training BatchNorm lives beside the fused one; kept here under its old name for callers.
export { batchNormWithBatchStatistics } from '../runtime/tfjs/fusedBatchNorm';
import type { Random } from '../util/random';
import '../util/tensorOps';
import { batchNormEpsilon, convLayers, networkLayout, type Architecture, type ConvLayer } from './layout';

/** The architecture, stored in every checkpoint so a model can be rebuilt without the training options. */
export interface ModelSpec {
  channels: number;
  /** 2 halves the resolution at the stem (as ResNet's stem does), for images of 48 px and more. */
  stemStride: 1 | 2;
  width: number;
  blocksPerStage: number[];
  projectionHiddenDim: number;
  projectionDim: number;
  prototypes: number;
  /** Per-channel input normalisation, measured on the training images. */
  inputMean: number[];
  inputStd: number[];
  /** Absent: resnet (checkpoints from before the plain option). */
  architecture?: Architecture;
}

/** Weights by name. Running BatchNorm statistics are non-trainable variables in the same map. */
export interface SwavModel {
  spec: ModelSpec;
  variables: Map<string, tf.Variable>;
}

export interface ForwardOutput {
  /** Backbone features after global average pooling. */
  features: tf.Tensor2D;
  /** L2-normalised projection. */
  embedding: tf.Tensor2D;
  /** Cosine scores against the (normalised) prototypes. */
  scores: tf.Tensor2D;
}

export type ForwardMode = 'train' | 'eval';

/** Batch statistics seen in a training forward pass, to fold into the running averages after the step. */
export type BatchStatistics = Map<string, { mean: tf.Tensor; variance: tf.Tensor; count: number }>;

const batchNormMomentum = 0.1;

export function featureDim(spec: ModelSpec): number {
  return spec.width * 2 ** (spec.blocksPerStage.length - 1);
}

/** Builds the network with He-initialised convolutions and PyTorch-style linear layers. */
export function createModel(spec: ModelSpec, random: Random): SwavModel {
  const variables = new Map<string, tf.Variable>();
  const add = (name: string, shape: number[], values: Float32Array, trainable = true) => {
    variables.set(name, variableFrom(values, shape, trainable));
  };
  const fill = (size: number, make: () => number) => Float32Array.from({ length: size }, make);
  const conv = (name: string, kernel: number, inChannels: number, outChannels: number) => {
    const std = Math.sqrt(2 / (kernel * kernel * outChannels)); // kaiming_normal_, fan_out, as torchvision's ResNet
    add(name, [kernel, kernel, inChannels, outChannels], fill(kernel * kernel * inChannels * outChannels, () => random.normal() * std));
  };
  const batchNorm = (name: string, channels: number) => {
    add(`${name}.gamma`, [channels], fill(channels, () => 1));
    add(`${name}.beta`, [channels], fill(channels, () => 0));
    add(`${name}.runningMean`, [channels], fill(channels, () => 0), false);
    add(`${name}.runningVariance`, [channels], fill(channels, () => 1), false);
  };
  const linear = (name: string, inDim: number, outDim: number, bias = true) => {
    const bound = 1 / Math.sqrt(inDim);
    add(`${name}.weight`, [inDim, outDim], fill(inDim * outDim, () => random.uniform(-bound, bound)));
    if (bias) add(`${name}.bias`, [outDim], fill(outDim, () => random.uniform(-bound, bound)));
  };

  const layout = networkLayout(spec);
  for (const layer of convLayers(layout)) {
    conv(layer.conv, layer.kernel, layer.inChannels, layer.outChannels);
    batchNorm(layer.batchNorm, layer.outChannels);
  }
  const inChannels = layout.featureChannels;
  linear('head.fc1', inChannels, spec.projectionHiddenDim);
  batchNorm('head.bn', spec.projectionHiddenDim);
  linear('head.fc2', spec.projectionHiddenDim, spec.projectionDim);
  // Prototypes: K unit vectors, rows of a [K, D] matrix, as `nn.Linear(D, K, bias=False).weight`.
  const prototypes = fill(spec.prototypes * spec.projectionDim, () => random.normal());
  add('prototypes', [spec.prototypes, spec.projectionDim], prototypes);
  normalizePrototypes({ spec, variables });
  return { spec, variables };
}

/** Backbone → projection MLP → L2 normalisation → prototype scores. `images` are NHWC in [0, 1]. */
export function forward(model: SwavModel, images: tf.Tensor4D, mode: ForwardMode, statistics?: BatchStatistics): ForwardOutput {
  return tf.tidy(() => {
    const features = backbone(model, images, mode, statistics);
    return { features, ...head(model, features, mode, statistics) };
  });
}

/** The convolutional trunk up to global average pooling. Also used by explanations that need the last feature map. */
export function backbone(model: SwavModel, images: tf.Tensor4D, mode: ForwardMode, statistics?: BatchStatistics): tf.Tensor2D {
  return tf.tidy(() => tf.mean(featureMap(model, images, mode, statistics), [1, 2]) as tf.Tensor2D);
}

/** The last convolutional feature map [N, h, w, C] (the Grad-CAM layer). */
export function featureMap(model: SwavModel, images: tf.Tensor4D, mode: ForwardMode, statistics?: BatchStatistics): tf.Tensor4D {
  return tf.tidy(() => {
    const normalized = tf.div(tf.sub(images, model.spec.inputMean), model.spec.inputStd) as tf.Tensor4D;
    const layout = networkLayout(model.spec);
    const convolve = (input: tf.Tensor4D, layer: ConvLayer, activation: Activation): tf.Tensor4D =>
      convBatchNorm(model, input, layer.conv, layer.batchNorm, layer.stride, activation, mode, statistics);
    let x = layout.stem ? convolve(normalized, layout.stem, { relu: true }) : normalized;
    for (const block of layout.blocks) {
      const { shortcut } = block;
      const residual = shortcut.kind === 'projection' ? convolve(x, shortcut.layer, { relu: false }) : shortcut.kind === 'identity' ? x : undefined;
      const out = convolve(x, block.first, { relu: true });
      x = convolve(out, block.second, { relu: true, residual });
    }
    return x;
  });
}

/** What follows a BatchNorm: an optional residual add, then an optional ReLU. */
interface Activation {
  relu: boolean;
  residual?: tf.Tensor;
}

/**
 * conv → BatchNorm → (+ residual) → (ReLU). Training normalises with batch statistics in one fused op; eval folds
 * the running statistics into the convolution's weights and bias, so XNNPACK applies them (and the ReLU) in its
 * output loop. Both stay differentiable, which explanations need.
 */
function convBatchNorm(
  model: SwavModel,
  input: tf.Tensor4D,
  convName: string,
  batchNormName: string,
  stride: number,
  activation: Activation,
  mode: ForwardMode,
  statistics?: BatchStatistics,
): tf.Tensor4D {
  const weights = variable(model, convName) as tf.Tensor4D;
  if (mode === 'train') {
    return trainBatchNorm(model, batchNormName, tf.conv2d(input, weights, stride, 'same'), activation, statistics);
  }
  const { scale, shift } = foldedBatchNorm(model, batchNormName);
  const folded = tf.mul(weights, scale) as tf.Tensor4D;
  if (activation.residual === undefined) {
    return tf.fused.conv2d({ x: input, filter: folded, strides: stride, pad: 'same', bias: shift, activation: activation.relu ? 'relu' : 'linear' });
  }
  const y = tf.add(tf.fused.conv2d({ x: input, filter: folded, strides: stride, pad: 'same', bias: shift }), activation.residual);
  return (activation.relu ? tf.relu(y) : y) as tf.Tensor4D;
}

/** Eval-mode BatchNorm as y = x·scale + shift, from the running statistics. */
function foldedBatchNorm(model: SwavModel, name: string): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
  const scale = tf.mul(variable(model, `${name}.gamma`), tf.rsqrt(tf.add(variable(model, `${name}.runningVariance`), batchNormEpsilon))) as tf.Tensor1D;
  const shift = tf.sub(variable(model, `${name}.beta`), tf.mul(variable(model, `${name}.runningMean`), scale)) as tf.Tensor1D;
  return { scale, shift };
}

/** Projection head and prototype scores from backbone features. */
export function head(model: SwavModel, features: tf.Tensor2D, mode: ForwardMode, statistics?: BatchStatistics): { embedding: tf.Tensor2D; scores: tf.Tensor2D } {
  return tf.tidy(() => {
    const v = (name: string) => variable(model, name);
    let hidden: tf.Tensor2D;
    if (mode === 'train') {
      hidden = tf.add(tf.matMul(features, v('head.fc1.weight') as tf.Tensor2D), v('head.fc1.bias')) as tf.Tensor2D;
      hidden = trainBatchNorm(model, 'head.bn', hidden, { relu: true }, statistics);
    } else {
      const { scale, shift } = foldedBatchNorm(model, 'head.bn');
      const weights = tf.mul(v('head.fc1.weight'), scale) as tf.Tensor2D;
      const bias = tf.add(tf.mul(v('head.fc1.bias'), scale), shift);
      hidden = tf.fused.matMul({ a: features, b: weights, bias, activation: 'relu' }) as tf.Tensor2D;
    }
    const projection = tf.add(tf.matMul(hidden, v('head.fc2.weight') as tf.Tensor2D), v('head.fc2.bias')) as tf.Tensor2D;
    const embedding = l2Normalize(projection);
    const scores = tf.matMul(embedding, v('prototypes') as tf.Tensor2D, false, true) as tf.Tensor2D;
    return { embedding, scores };
  });
}

export function l2Normalize<T extends tf.Tensor>(x: T, axis = -1): T {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', axis, true), 1e-12)) as T);
}

/** Prototypes are kept on the unit sphere before every step, as `w = F.normalize(w, dim=1)` in SwAV. */
export function normalizePrototypes(model: SwavModel): void {
  const prototypes = variable(model, 'prototypes');
  tf.tidy(() => prototypes.assign(l2Normalize(prototypes, 1)));
}

/** Training BatchNorm (batch statistics), fused with what follows it; records the statistics for the running averages. */
function trainBatchNorm<T extends tf.Tensor>(model: SwavModel, name: string, x: T, activation: Activation, statistics?: BatchStatistics): T {
  const gamma = variable(model, `${name}.gamma`) as tf.Tensor as tf.Tensor1D;
  const beta = variable(model, `${name}.beta`) as tf.Tensor as tf.Tensor1D;
  const { y, mean, variance } = batchNormActivation(x, gamma, beta, { ...activation, epsilon: batchNormEpsilon });
  const count = x.size / x.shape[x.rank - 1];
  if (statistics) statistics.set(name, { mean, variance, count });
  else tf.dispose([mean, variance]);
  return y;
}

/** Folds one step's batch statistics into the running averages (unbiased variance, as PyTorch does). */
export function updateRunningStatistics(model: SwavModel, statistics: BatchStatistics): void {
  tf.tidy(() => {
    for (const [name, { mean, variance, count }] of statistics) {
      const runningMean = variable(model, `${name}.runningMean`);
      const runningVariance = variable(model, `${name}.runningVariance`);
      runningMean.assign(tf.add(tf.mul(runningMean, 1 - batchNormMomentum), tf.mul(mean, batchNormMomentum)));
      const unbiased = tf.mul(variance, count / Math.max(1, count - 1));
      runningVariance.assign(tf.add(tf.mul(runningVariance, 1 - batchNormMomentum), tf.mul(unbiased, batchNormMomentum)));
    }
  });
  disposeStatistics(statistics);
}

export function disposeStatistics(statistics: BatchStatistics): void {
  for (const { mean, variance } of statistics.values()) tf.dispose([mean, variance]);
  statistics.clear();
}

/** A variable holding `values`; the temporary tensor is freed (tidy does not track variables). */
export function variableFrom(values: Float32Array, shape: number[], trainable: boolean): tf.Variable {
  const initial = tf.tensor(values, shape);
  const result = tf.variable(initial, trainable);
  initial.dispose();
  return result;
}

export function variable(model: SwavModel, name: string): tf.Variable {
  const found = model.variables.get(name);
  if (!found) throw new Error(`Model has no variable "${name}"`);
  return found;
}

export function trainableVariables(model: SwavModel): tf.Variable[] {
  return [...model.variables.values()].filter((v) => v.trainable);
}

/**
 * The start of every SwAV step: the prototypes go back onto the unit sphere, and while they are frozen (the
 * first steps) they are left out of the variables the step updates.
 */
export function startStep(model: SwavModel, prototypesFrozen: boolean): tf.Variable[] {
  normalizePrototypes(model);
  const prototypes = variable(model, 'prototypes');
  return trainableVariables(model).filter((v) => !(prototypesFrozen && v === prototypes));
}

export function disposeModel(model: SwavModel): void {
  for (const v of model.variables.values()) v.dispose();
  model.variables.clear();
}

export function parameterCount(model: SwavModel): number {
  return trainableVariables(model).reduce((sum, v) => sum + v.size, 0);
}
