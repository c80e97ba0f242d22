// Training BatchNorm fused with its ReLU and residual add: y = act(γ·(x − μ)/σ + β [+ r]).
//
// In tfjs every step of this (moments, subtract, scale, shift, add, relu, and twice as many in the gradient) is
// a pass over the whole activation, and the wasm backend's broadcasting kernels are slow (measured 10 ms for a
// per-channel multiply of 128×28×28×16). On wasm it runs as four SIMD loops of ours (simdKernels.ts):
// statistics, apply, gradient sums, gradient apply, one pass each; measured ~400 → ~60 ms per train step.
// Elsewhere, or for channel counts that are not a multiple of 4, the same maths runs as tfjs ops.

import * as tf from '@tensorflow/tfjs-core';
import { Scratch, simdKernels, type WasmBackendInternals } from './simdKernels';

export const batchNormTrainKernel = 'ClusterLensBatchNormTrain';
export const batchNormTrainGradKernel = 'ClusterLensBatchNormTrainGrad';

export interface BatchNormActivationOptions {
  relu: boolean;
  epsilon: number;
  /** Added after the affine step and before the ReLU (a residual block's shortcut). */
  residual?: tf.Tensor;
}

export interface BatchNormActivationResult<T extends tf.Tensor> {
  y: T;
  /** Batch mean and biased variance over all but the last axis, for the running statistics. */
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs: tf.NamedAttrMap;
}

/** Inputs x, gamma, beta[, residual]; attrs relu, epsilon. Outputs y, mean, variance (biased). */
function batchNormTrainWasm({ inputs, backend: kernelBackend, attrs }: KernelArgs): tf.TensorInfo[] {
  const backend = kernelBackend as WasmBackendInternals;
  const { x, gamma, beta, residual } = inputs as Record<string, tf.TensorInfo>;
  const { relu, epsilon } = attrs as unknown as { relu: boolean; epsilon: number };
  const kernels = simdKernels(backend);
  const channels = x.shape[x.shape.length - 1];
  const pixels = tf.util.sizeFromShape(x.shape) / channels;
  const scratch = new Scratch(backend);
  try {
    const acc = scratch.float64(2 * channels);
    new Float64Array(kernels.memory.buffer, acc, 2 * channels).fill(0);
    kernels.moments(scratch.address(x), pixels, channels, acc);
    const sums = new Float64Array(kernels.memory.buffer, acc, 2 * channels).slice();
    const gammaValues = backend.readSync(gamma.dataId) as Float32Array;
    const betaValues = backend.readSync(beta.dataId) as Float32Array;
    const mean = new Float32Array(channels);
    const variance = new Float32Array(channels);
    const scale = new Float32Array(channels);
    const shift = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      const m = sums[c] / pixels;
      const v = Math.max(0, sums[channels + c] / pixels - m * m);
      mean[c] = m;
      variance[c] = v;
      scale[c] = gammaValues[c] / Math.sqrt(v + epsilon);
      shift[c] = betaValues[c] - m * scale[c];
    }
    const y = backend.makeOutput(x.shape, 'float32');
    kernels.affine(
      residual !== undefined,
      relu,
      scratch.address(x),
      residual !== undefined ? scratch.address(residual) : 0,
      scratch.address(y),
      pixels,
      channels,
      scratch.float32(scale, kernels.memory),
      scratch.float32(shift, kernels.memory),
    );
    const meanInfo = backend.makeOutput([channels], 'float32');
    const varianceInfo = backend.makeOutput([channels], 'float32');
    new Float32Array(kernels.memory.buffer, scratch.address(meanInfo), channels).set(mean);
    new Float32Array(kernels.memory.buffer, scratch.address(varianceInfo), channels).set(variance);
    return [y, meanInfo, varianceInfo];
  } finally {
    scratch.release();
  }
}

/**
 * Inputs dy, x, y, gamma, mean, variance; attrs relu, epsilon, residual. Outputs dx, dγ, dβ and, with a
 * residual, its gradient g. With g = dy·[y > 0] (or dy), x̂ = (x − μ)/σ and M pixels:
 * dβ = Σg, dγ = Σg·x̂ = (Σg·x − μΣg)/σ, dx = γ/σ·(g − dβ/M − x̂·dγ/M) = g·k1 + x·k2 + k3.
 */
function batchNormTrainGradWasm({ inputs, backend: kernelBackend, attrs }: KernelArgs): tf.TensorInfo[] {
  const backend = kernelBackend as WasmBackendInternals;
  const { dy, x, y, gamma, mean, variance } = inputs as Record<string, tf.TensorInfo>;
  const { relu, epsilon, residual } = attrs as unknown as { relu: boolean; epsilon: number; residual: boolean };
  const kernels = simdKernels(backend);
  const channels = x.shape[x.shape.length - 1];
  const pixels = tf.util.sizeFromShape(x.shape) / channels;
  const scratch = new Scratch(backend);
  try {
    const acc = scratch.float64(2 * channels);
    new Float64Array(kernels.memory.buffer, acc, 2 * channels).fill(0);
    kernels.gradientSums(relu, scratch.address(dy), scratch.address(x), scratch.address(y), pixels, channels, acc);
    const sums = new Float64Array(kernels.memory.buffer, acc, 2 * channels).slice();
    const gammaValues = backend.readSync(gamma.dataId) as Float32Array;
    const meanValues = backend.readSync(mean.dataId) as Float32Array;
    const varianceValues = backend.readSync(variance.dataId) as Float32Array;
    const dGamma = new Float32Array(channels);
    const dBeta = new Float32Array(channels);
    const k1 = new Float32Array(channels);
    const k2 = new Float32Array(channels);
    const k3 = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      const inverseStd = 1 / Math.sqrt(varianceValues[c] + epsilon);
      const sumG = sums[c];
      const sumGHat = inverseStd * (sums[channels + c] - meanValues[c] * sumG);
      dBeta[c] = sumG;
      dGamma[c] = sumGHat;
      k1[c] = gammaValues[c] * inverseStd;
      k2[c] = (-k1[c] * inverseStd * sumGHat) / pixels;
      k3[c] = k1[c] * ((inverseStd * sumGHat * meanValues[c]) / pixels - sumG / pixels);
    }
    const dx = backend.makeOutput(x.shape, 'float32');
    const dResidual = residual ? backend.makeOutput(x.shape, 'float32') : undefined;
    kernels.gradient(
      relu,
      residual,
      scratch.address(dy),
      scratch.address(x),
      relu ? scratch.address(y) : 0,
      scratch.address(dx),
      dResidual !== undefined ? scratch.address(dResidual) : 0,
      pixels,
      channels,
      scratch.float32(k1, kernels.memory),
      scratch.float32(k2, kernels.memory),
      scratch.float32(k3, kernels.memory),
    );
    const dGammaInfo = backend.makeOutput([channels], 'float32');
    const dBetaInfo = backend.makeOutput([channels], 'float32');
    new Float32Array(kernels.memory.buffer, scratch.address(dGammaInfo), channels).set(dGamma);
    new Float32Array(kernels.memory.buffer, scratch.address(dBetaInfo), channels).set(dBeta);
    return dResidual !== undefined ? [dx, dGammaInfo, dBetaInfo, dResidual] : [dx, dGammaInfo, dBetaInfo];
  } finally {
    scratch.release();
  }
}

export const fusedBatchNormKernelConfigs: tf.KernelConfig[] = [
  { kernelName: batchNormTrainKernel, backendName: 'wasm', kernelFunc: batchNormTrainWasm as unknown as tf.KernelFunc },
  { kernelName: batchNormTrainGradKernel, backendName: 'wasm', kernelFunc: batchNormTrainGradWasm as unknown as tf.KernelFunc },
];

// ------------------------------------------------------------------------------------------ the op

function canFuse(x: tf.Tensor): boolean {
  const channels = x.shape[x.rank - 1];
  return x.dtype === 'float32' && channels % 4 === 0 && x.size > 0 && tf.getKernel(batchNormTrainKernel, tf.getBackend()) !== undefined;
}

/**
 * Training BatchNorm over all but the last axis, with batch statistics, then `+ residual` and ReLU as asked.
 * Differentiable in x, γ, β and the residual; the mean and variance come back without gradients.
 */
export function batchNormActivation<T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, beta: tf.Tensor1D, options: BatchNormActivationOptions): BatchNormActivationResult<T> {
  return canFuse(x) ? fused(x, gamma, beta, options) : composite(x, gamma, beta, options);
}

function fused<T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, beta: tf.Tensor1D, options: BatchNormActivationOptions): BatchNormActivationResult<T> {
  const { relu, epsilon, residual } = options;
  let statistics: tf.Tensor1D[] = [];
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [input, scale, offset, shortcut] = args.slice(0, -1) as tf.Tensor[];
    const kernelInputs: tf.NamedTensorMap = { x: input, gamma: scale, beta: offset };
    if (shortcut !== undefined) kernelInputs.residual = shortcut;
    const [y, mean, variance] = tf.engine().runKernel(batchNormTrainKernel, kernelInputs, { relu, epsilon } as unknown as tf.NamedAttrMap) as tf.Tensor[];
    // customGrad keeps only its value: the statistics must be kept from inside it.
    statistics = [mean, variance].map((tensor) => tf.keep(tf.clone(tensor)) as tf.Tensor1D);
    save([input, y, scale, mean, variance]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [savedX, savedY, savedGamma, savedMean, savedVariance] = saved;
        return tf.engine().runKernel(
          batchNormTrainGradKernel,
          { dy: dy as tf.Tensor, x: savedX, y: savedY, gamma: savedGamma, mean: savedMean, variance: savedVariance },
          { relu, epsilon, residual: shortcut !== undefined } as unknown as tf.NamedAttrMap,
        ) as tf.Tensor[];
      },
    };
  });
  const y = (residual !== undefined ? op(x, gamma, beta, residual) : op(x, gamma, beta)) as T;
  const [mean, variance] = statistics;
  return { y, mean, variance };
}

/** The same maths as tfjs ops: the closed-form BatchNorm below, then the residual add and the ReLU. */
function composite<T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, beta: tf.Tensor1D, options: BatchNormActivationOptions): BatchNormActivationResult<T> {
  const axes = Array.from({ length: x.rank - 1 }, (_, axis) => axis);
  let mean: tf.Tensor1D | undefined;
  let variance: tf.Tensor1D | undefined;
  const normalize = batchNormWithBatchStatistics(
    axes,
    (batchMean, batchVariance) => {
      mean = batchMean as tf.Tensor1D;
      variance = batchVariance as tf.Tensor1D;
    },
    options.epsilon,
  );
  let y = normalize(x, gamma, beta) as tf.Tensor;
  if (options.residual !== undefined) y = tf.add(y, options.residual);
  if (options.relu) y = tf.relu(y);
  return { y: y as T, mean: mean!, variance: variance! };
}

/**
 * BatchNorm with batch statistics and its closed-form gradient:
 * dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy.
 * tfjs's own FusedBatchNorm gradient tiles every statistic to the input's full size, which dominated wasm steps.
 */
export function batchNormWithBatchStatistics(axes: number[], onStatistics: (mean: tf.Tensor, variance: tf.Tensor) => void, epsilon = 1e-5) {
  return tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, gamma, beta] = inputs as tf.Tensor[];
    const count = axes.reduce((product, axis) => product * x.shape[axis], 1);
    const save = inputs[3] as tf.GradSaveFunc;
    const { mean, variance } = tf.moments(x, axes);
    onStatistics(tf.keep(tf.clone(mean)), tf.keep(tf.clone(variance)));
    const inverseStd = tf.rsqrt(tf.add(variance, epsilon));
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
