import * as tf from '@tensorflow/tfjs-core';
import type { Random } from '../util/random';
import '../util/tensorOps';

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

const batchNormEpsilon = 1e-5;
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

  conv('stem.conv', 3, spec.channels, spec.width);
  batchNorm('stem.bn', spec.width);
  let inChannels = spec.width;
  spec.blocksPerStage.forEach((blocks, stage) => {
    const outChannels = spec.width * 2 ** stage;
    for (let block = 0; block < blocks; block++) {
      const prefix = `stage${stage}.block${block}`;
      conv(`${prefix}.conv1`, 3, inChannels, outChannels);
      batchNorm(`${prefix}.bn1`, outChannels);
      conv(`${prefix}.conv2`, 3, outChannels, outChannels);
      batchNorm(`${prefix}.bn2`, outChannels);
      if (blockStride(stage, block) !== 1 || inChannels !== outChannels) {
        conv(`${prefix}.shortcut.conv`, 1, inChannels, outChannels);
        batchNorm(`${prefix}.shortcut.bn`, outChannels);
      }
      inChannels = outChannels;
    }
  });
  linear('head.fc1', inChannels, spec.projectionHiddenDim);
  batchNorm('head.bn', spec.projectionHiddenDim);
  linear('head.fc2', spec.projectionHiddenDim, spec.projectionDim);
  // Prototypes: K unit vectors, rows of a [K, D] matrix, as `nn.Linear(D, K, bias=False).weight`.
  const prototypes = fill(spec.prototypes * spec.projectionDim, () => random.normal());
  add('prototypes', [spec.prototypes, spec.projectionDim], prototypes);
  normalizePrototypes({ spec, variables });
  return { spec, variables };
}

function blockStride(stage: number, block: number): number {
  return stage > 0 && block === 0 ? 2 : 1;
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
    const v = (name: string) => variable(model, name);
    const normalized = tf.div(tf.sub(images, model.spec.inputMean), model.spec.inputStd) as tf.Tensor4D;
    let x = tf.relu(batchNorm(model, 'stem.bn', tf.conv2d(normalized, v('stem.conv') as tf.Tensor4D, model.spec.stemStride, 'same'), mode, statistics)) as tf.Tensor4D;
    model.spec.blocksPerStage.forEach((blocks, stage) => {
      for (let block = 0; block < blocks; block++) {
        const prefix = `stage${stage}.block${block}`;
        const stride = blockStride(stage, block);
        let out = tf.conv2d(x, v(`${prefix}.conv1`) as tf.Tensor4D, stride, 'same');
        out = tf.relu(batchNorm(model, `${prefix}.bn1`, out, mode, statistics));
        out = batchNorm(model, `${prefix}.bn2`, tf.conv2d(out, v(`${prefix}.conv2`) as tf.Tensor4D, 1, 'same'), mode, statistics);
        const shortcut = model.variables.has(`${prefix}.shortcut.conv`)
          ? batchNorm(model, `${prefix}.shortcut.bn`, tf.conv2d(x, v(`${prefix}.shortcut.conv`) as tf.Tensor4D, stride, 'same'), mode, statistics)
          : x;
        x = tf.relu(tf.add(out, shortcut)) as tf.Tensor4D;
      }
    });
    return x;
  });
}

/** Projection head and prototype scores from backbone features. */
export function head(model: SwavModel, features: tf.Tensor2D, mode: ForwardMode, statistics?: BatchStatistics): { embedding: tf.Tensor2D; scores: tf.Tensor2D } {
  return tf.tidy(() => {
    const v = (name: string) => variable(model, name);
    let hidden = tf.add(tf.matMul(features, v('head.fc1.weight') as tf.Tensor2D), v('head.fc1.bias')) as tf.Tensor2D;
    hidden = tf.relu(batchNorm(model, 'head.bn', hidden, mode, statistics));
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

function batchNorm<T extends tf.Tensor>(model: SwavModel, name: string, x: T, mode: ForwardMode, statistics?: BatchStatistics): T {
  const gamma = variable(model, `${name}.gamma`);
  const beta = variable(model, `${name}.beta`);
  if (mode === 'eval') {
    return tf.batchNorm(x, variable(model, `${name}.runningMean`), variable(model, `${name}.runningVariance`), beta, gamma, batchNormEpsilon) as T;
  }
  const axes = x.rank === 4 ? [0, 1, 2] : [0];
  const count = axes.reduce((product, axis) => product * x.shape[axis], 1);
  let batchMean: tf.Tensor | undefined;
  let batchVariance: tf.Tensor | undefined;
  const normalized = batchNormWithBatchStatistics(axes, (mean, variance) => {
    batchMean = mean;
    batchVariance = variance;
  })(x, gamma, beta) as T;
  if (statistics) statistics.set(name, { mean: batchMean!, variance: batchVariance!, count });
  else tf.dispose([batchMean!, batchVariance!]);
  return normalized;
}

/**
 * BatchNorm with batch statistics and its closed-form gradient:
 * dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy.
 * tfjs's own FusedBatchNorm gradient tiles every statistic to the input's full size, which dominated wasm steps.
 */
export function batchNormWithBatchStatistics(axes: number[], onStatistics: (mean: tf.Tensor, variance: tf.Tensor) => void) {
  return tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, gamma, beta] = inputs as tf.Tensor[];
    const count = axes.reduce((product, axis) => product * x.shape[axis], 1);
    const save = inputs[3] as tf.GradSaveFunc;
    const { mean, variance } = tf.moments(x, axes);
    onStatistics(tf.keep(tf.clone(mean)), tf.keep(tf.clone(variance)));
    const inverseStd = tf.rsqrt(tf.add(variance, batchNormEpsilon));
    const normalized = tf.mul(tf.sub(x, mean), inverseStd);
    save([normalized, inverseStd, gamma]);
    return {
      value: tf.add(tf.mul(normalized, gamma), beta),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xHat, invStd, scale] = saved;
        const gradient = dy as tf.Tensor;
        const sumDy = tf.sum(gradient, axes);
        const sumDyXHat = tf.sum(tf.mul(gradient, xHat), axes);
        const dx = tf.mul(
          tf.sub(tf.sub(gradient, tf.div(sumDy, count)), tf.mul(xHat, tf.div(sumDyXHat, count))),
          tf.mul(scale, invStd),
        );
        return [dx, sumDyXHat, sumDy];
      },
    };
  });
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

export function disposeModel(model: SwavModel): void {
  for (const v of model.variables.values()) v.dispose();
  model.variables.clear();
}

export function parameterCount(model: SwavModel): number {
  return trainableVariables(model).reduce((sum, v) => sum + v.size, 0);
}
