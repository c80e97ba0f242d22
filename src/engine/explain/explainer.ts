// The one interface every explanation method implements, and the plumbing they share: what a network must
// offer (the Grad-CAM layer and what follows it), what a target is, and how maps are upsampled and normalised.
import * as tf from '@tensorflow/tfjs-core';
import type { CounterfactualKind, CounterfactualRegion, CounterfactualSearchPlan, DeviceKind, ExplainMethod, ExplainOptions, Neighbour } from '../../protocol/options';
import type { LogLevel } from '../../protocol/engine';
import type { SwavModel } from '../model/model';
import type { ExplainGraphs } from '../runtime/explainGraph';

/** What an explainer needs from a network: the last convolutional stage, and everything after it. */
export interface ExplainableModel {
  /** The Grad-CAM layer: the last convolutional feature map [N, h, w, C] of images [N, S, S, C] in [0, 1]. */
  featureMap(images: tf.Tensor4D): tf.Tensor4D;
  /** From that map to pooled backbone features [N, F] and prototype scores [N, K]. */
  outputs(featureMap: tf.Tensor4D): { features: tf.Tensor2D; scores: tf.Tensor2D };
  prototypes: number;
  /** Softmax temperature that turns prototype scores into probabilities. */
  temperature: number;
  /** The engine's own network, which Grad-CAM and the counterfactual can run as ONNX graphs (absent for frozen imports). */
  model?: SwavModel;
  /**
   * The graphs of a network that is not the engine's own (a frozen import): Grad-CAM, the counterfactual and the
   * batched forward pass (onDevice.ts's scoreImagesOnDevice) run on onnxruntime through them. Where tfjs cannot
   * run the import, featureMap and outputs throw, naming the operator.
   */
  graphs?: ExplainGraphs;
}

/** The scalar being explained. */
export type Target =
  /** The score (cosine to the prototype) of prototype `prototype`. */
  | { kind: 'prototype'; prototype: number }
  /** The cosine between the backbone features of the image and of `pair` [1, S, S, C]; the pair gets a map too. */
  | { kind: 'similarity'; pair: tf.Tensor4D };

export type TargetKind = Target['kind'];

export interface ExplainInput {
  net: ExplainableModel;
  /** [1, S, S, C] in [0, 1]. */
  image: tf.Tensor4D;
  target: Target;
  options: ExplainOptions;
  /** Seeds whatever the method draws at random, so that a call repeats exactly. */
  seed: number;
  signal?: AbortSignal;
  /** For a line when a method falls back from onnxruntime's device to tfjs. */
  log?: (level: LogLevel, message: string) => void;
  /** The members of `cluster` nearest to the image, from the run's index: what region and mask counterfactuals borrow from. */
  donors?: (cluster: number, count: number) => Promise<Donor[]>;
  /** For long searches: a fraction of the work done and a line for the user. */
  progress?: (fraction: number, message: string) => void;
}

/** An image of the run that a counterfactual may borrow from, as the model sees it. */
export interface Donor extends Neighbour {
  /** S·S·C values in [0, 1], NHWC. */
  pixels: Float32Array;
}

export interface Explanation {
  /** S × S, row-major, in [0, 1]: how much each pixel of the image matters to the target. */
  heatmap: Float32Array;
  /** The same over the pair image, for similarity targets. */
  pairHeatmap?: Float32Array;
  /** The target's value at the unmodified input. */
  score: number;
  counterfactual?: CounterfactualOutcome;
  /** onnxruntime's device, when the method ran there (else it ran on tfjs). */
  device?: DeviceKind;
}

export interface Explainer {
  readonly method: ExplainMethod;
  /** One line for the user. */
  readonly description: string;
  readonly targets: readonly TargetKind[];
  /** What it explains when the request names no target. */
  readonly defaultTarget: 'assigned' | 'nearest-other-cluster' | 'neighbour';
  explain(input: ExplainInput): Promise<Explanation>;
}

/** Bilinear resize of maps [N, h, w, 1] to [N, S, S, 1] with half-pixel centres (as cv2.resize in pytorch-grad-cam). */
export function upsampleMaps(maps: tf.Tensor4D, sizePx: number): tf.Tensor4D {
  if (maps.shape[1] === sizePx && maps.shape[2] === sizePx) return tf.clone(maps);
  return tf.image.resizeBilinear(maps, [sizePx, sizePx], false, true);
}

/** Each map [N, …] rescaled to [0, 1] by its own min and max; a flat map becomes all zeros. */
export function normalizeMaps(maps: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const axes = maps.shape.map((_, axis) => axis).slice(1);
    const low = tf.min(maps, axes, true);
    const range = tf.sub(tf.max(maps, axes, true), low);
    return tf.div(tf.sub(maps, low), tf.maximum(range, 1e-12));
  });
}

/** Rescales one map in place to [0, 1]; a flat map becomes all zeros. */
export function normalizeArray(values: Float32Array): Float32Array {
  let low = Infinity;
  let high = -Infinity;
  for (const value of values) {
    if (value < low) low = value;
    if (value > high) high = value;
  }
  const range = high - low;
  for (let i = 0; i < values.length; i++) values[i] = range > 1e-12 ? (values[i] - low) / range : 0;
  return values;
}

/** Reads N maps [N, S, S, 1] (or [N, S, S]) into N arrays of S·S values, and disposes the tensor. */
export function readMaps(maps: tf.Tensor): Float32Array[] {
  const values = maps.dataSync() as Float32Array;
  const count = maps.shape[0];
  const size = values.length / count;
  maps.dispose();
  return Array.from({ length: count }, (_, i) => values.slice(i * size, (i + 1) * size));
}

/** The image and, for similarity targets, its pair, as one batch [1 or 2, S, S, C]. */
export function imageAndPair(image: tf.Tensor4D, target: Target): tf.Tensor4D {
  return target.kind === 'similarity' ? tf.concat([image, target.pair], 0) : tf.clone(image);
}

export function imageSizeOf(image: tf.Tensor4D): number {
  return image.shape[1];
}

export interface CounterfactualOutcome {
  kind: CounterfactualKind;
  /** The images borrowed from (region and mask counterfactuals). */
  donors?: Donor[];
  /** The cells swapped in, or covered by the mask. */
  regions?: CounterfactualRegion[];
  /** The edited image, S·S·C values in [0, 1]. */
  pixels: Float32Array;
  /** Prototype probabilities and scores of the edited image. */
  probabilities: Float32Array;
  scores: Float32Array;
  originalProbabilities: Float32Array;
  targetCluster: number;
  valid: boolean;
  l1Distance: number;
  l2Distance: number;
  meanAbsoluteChange: number;
  changedPixelShare: number;
  /** Largest change of any value, the scale of the (normalised) diff map. */
  maxAbsoluteChange: number;
  steps: number;
  converged: boolean;
  durationMs: number;
  /** Region counterfactuals: the settings the search fitted to its budget. */
  search?: CounterfactualSearchPlan;
}
