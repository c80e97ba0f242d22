// The one interface every explanation method implements, and what they share: the network as onnxruntime graphs
// (the engine's own or a frozen import's), what a target is, and the map helpers on typed arrays.
import type { CounterfactualKind, CounterfactualRegion, CounterfactualSearchPlan, DeviceKind, ExplainMethod, ExplainOptions, Neighbour } from '../../protocol/options';
import type { LogLevel } from '../../protocol/engine';
import type { ExplainGraphs } from '../runtime/explainGraph';

/** A network being explained: its graphs (explain/onDevice.ts runs them on the chosen device). */
export interface ExplainableModel {
  graphs: ExplainGraphs;
  prototypes: number;
  /** Softmax temperature that turns prototype scores into probabilities. */
  temperature: number;
}

/** The scalar being explained. */
export type Target =
  /** The score (cosine to the prototype) of prototype `prototype`. */
  | { kind: 'prototype'; prototype: number }
  /** The cosine between the backbone features of the image and of `pair` (S·S·C values); the pair gets a map too. */
  | { kind: 'similarity'; pair: Float32Array };

export type TargetKind = Target['kind'];

/** An image as the network sees it: S·S·C values in [0, 1], NHWC. */
export interface Pixels {
  pixels: Float32Array;
  sizePx: number;
  channels: number;
}

export interface ExplainInput {
  net: ExplainableModel;
  image: Pixels;
  target: Target;
  options: ExplainOptions;
  /** Seeds whatever the method draws at random, so that a call repeats exactly. */
  seed: number;
  signal?: AbortSignal;
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
  /** onnxruntime's device the method ran on (absent for methods that run no graph, such as the random map). */
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

/** The image's pair as Pixels (similarity targets). */
export function pairOf(image: Pixels, target: Target): Pixels | undefined {
  return target.kind === 'similarity' ? { ...image, pixels: target.pair } : undefined;
}

/**
 * Bilinear resize of `count` single-channel maps [count, h, w] to [count, outH, outW] with half-pixel centres
 * (as cv2.resize in pytorch-grad-cam, tf.image.resizeBilinear(…, halfPixelCenters) and ONNX Resize's half_pixel).
 */
export function resizeMaps(maps: Float32Array, count: number, height: number, width: number, outHeight: number, outWidth = outHeight): Float32Array {
  const out = new Float32Array(count * outHeight * outWidth);
  const axis = (size: number, outSize: number) =>
    Array.from({ length: outSize }, (_, o) => {
      const source = Math.min(Math.max((o + 0.5) * (size / outSize) - 0.5, 0), size - 1);
      const low = Math.floor(source);
      return { low, high: Math.min(low + 1, size - 1), fraction: source - low };
    });
  const rows = axis(height, outHeight);
  const columns = axis(width, outWidth);
  for (let n = 0; n < count; n++) {
    const map = n * height * width;
    for (let y = 0; y < outHeight; y++) {
      const { low: y0, high: y1, fraction: fy } = rows[y];
      for (let x = 0; x < outWidth; x++) {
        const { low: x0, high: x1, fraction: fx } = columns[x];
        const top = maps[map + y0 * width + x0] + (maps[map + y0 * width + x1] - maps[map + y0 * width + x0]) * fx;
        const bottom = maps[map + y1 * width + x0] + (maps[map + y1 * width + x1] - maps[map + y1 * width + x0]) * fx;
        out[(n * outHeight + y) * outWidth + x] = top + (bottom - top) * fy;
      }
    }
  }
  return out;
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

/** Row `index` of `count` equal rows packed in `values`. */
export function rowOf(values: Float32Array, count: number, index: number): Float32Array {
  const size = values.length / count;
  return values.subarray(index * size, (index + 1) * size);
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
