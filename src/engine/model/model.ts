import type { Random } from '../util/random';
import { convLayers, networkLayout, type Architecture } from './layout';

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

/** One named array of the parameter store: a weight (trainable) or a running BatchNorm statistic. */
export interface Parameter {
  shape: number[];
  values: Float32Array;
  trainable: boolean;
}

/**
 * The parameter store: weights and running BatchNorm statistics by name, as typed arrays. Every graph (training
 * step, explanations, export) reads them from here; Adam and the statistics' averages update them in place.
 */
export interface SwavModel {
  spec: ModelSpec;
  variables: Map<string, Parameter>;
}

/** Batch statistics seen in a training step, to fold into the running averages after it. */
export type BatchStatistics = Map<string, { mean: Float32Array; variance: Float32Array; count: number }>;

const batchNormMomentum = 0.1;

export function featureDim(spec: ModelSpec): number {
  return spec.width * 2 ** (spec.blocksPerStage.length - 1);
}

/** Builds the network with He-initialised convolutions and PyTorch-style linear layers. */
export function createModel(spec: ModelSpec, random: Random): SwavModel {
  const variables = new Map<string, Parameter>();
  const add = (name: string, shape: number[], values: Float32Array, trainable = true) => {
    variables.set(name, { shape, values, trainable });
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

/** Each `dims`-wide row of `values` scaled to unit length, in place (rows of zeros stay zero). */
export function normalizeRowsInPlace(values: Float32Array, dims: number): Float32Array {
  for (let offset = 0; offset < values.length; offset += dims) {
    let sum = 0;
    for (let i = 0; i < dims; i++) sum += values[offset + i] * values[offset + i];
    const scale = 1 / Math.max(Math.sqrt(sum), 1e-12);
    for (let i = 0; i < dims; i++) values[offset + i] *= scale;
  }
  return values;
}

/** Prototypes are kept on the unit sphere before every step, as `w = F.normalize(w, dim=1)` in SwAV. */
export function normalizePrototypes(model: SwavModel): void {
  const prototypes = variable(model, 'prototypes');
  normalizeRowsInPlace(prototypes.values, prototypes.shape[1]);
}

/** Folds one step's batch statistics into the running averages (unbiased variance, as PyTorch does). */
export function updateRunningStatistics(model: SwavModel, statistics: BatchStatistics): void {
  for (const [name, { mean, variance, count }] of statistics) {
    const runningMean = variable(model, `${name}.runningMean`).values;
    const runningVariance = variable(model, `${name}.runningVariance`).values;
    const unbiased = count / Math.max(1, count - 1);
    for (let i = 0; i < runningMean.length; i++) {
      runningMean[i] = runningMean[i] * (1 - batchNormMomentum) + mean[i] * batchNormMomentum;
      runningVariance[i] = runningVariance[i] * (1 - batchNormMomentum) + variance[i] * unbiased * batchNormMomentum;
    }
  }
  statistics.clear();
}

export function variable(model: SwavModel, name: string): Parameter {
  const found = model.variables.get(name);
  if (!found) throw new Error(`Model has no variable "${name}"`);
  return found;
}

/** The trainable weights by name, in the store's order. */
export function trainableVariables(model: SwavModel): Map<string, Parameter> {
  return new Map([...model.variables].filter(([, v]) => v.trainable));
}

/**
 * The start of every SwAV step: the prototypes go back onto the unit sphere, and while they are frozen (the
 * first steps) they are left out of the weights the step updates. Returns the names it updates.
 */
export function startStep(model: SwavModel, prototypesFrozen: boolean): Set<string> {
  normalizePrototypes(model);
  return new Set([...trainableVariables(model).keys()].filter((name) => !(prototypesFrozen && name === 'prototypes')));
}

/** Drops the store's arrays, so a job ends holding none of them. */
export function disposeModel(model: SwavModel): void {
  model.variables.clear();
}

export function parameterCount(model: SwavModel): number {
  return [...trainableVariables(model).values()].reduce((sum, v) => sum + v.values.length, 0);
}

/** The store's arrays by name, shape and values (no copy), as the graph builders take them. */
export function weightsOf(model: SwavModel): Map<string, { shape: number[]; values: Float32Array }> {
  return new Map([...model.variables].map(([name, { shape, values }]) => [name, { shape, values }]));
}
