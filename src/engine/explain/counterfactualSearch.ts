// What the counterfactual searches share: Adam's settings, the stopping rule, and the outcome of an edit.
import type { CounterfactualKind } from '../../protocol/options';
import type { CounterfactualOutcome } from './explainer';

// A pixel counts as changed when some channel moved by more than this.
const changedPixelThreshold = 0.05;
/** Adam's settings for the search. */
export const adam = { beta1: 0.9, beta2: 0.999, adamEpsilon: 1e-8 };
/** Yield to the event loop (for a cancel) every this many steps. */
export const stepsPerYield = 10;

export function holdsWithMargin(probabilities: Float32Array, target: number, margin: number): boolean {
  let runnerUp = 0;
  probabilities.forEach((probability, prototype) => {
    if (prototype !== target && probability > runnerUp) runnerUp = probability;
  });
  return probabilities[target] - runnerUp >= margin;
}

function argMax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** The outcome of an edit: its distances from the original and whether it reached the target. */
export function describeEdit(edit: {
  kind?: CounterfactualKind;
  pixels: Float32Array;
  original: Float32Array;
  channels: number;
  probabilities: Float32Array;
  scores: Float32Array;
  originalProbabilities: Float32Array;
  target: number;
  steps: number;
  converged: boolean;
  startedAt: number;
}): CounterfactualOutcome {
  const { pixels, original, channels } = edit;
  let l1Distance = 0;
  let squaredSum = 0;
  let maxAbsoluteChange = 0;
  let changedPixels = 0;
  for (let pixel = 0; pixel < pixels.length / channels; pixel++) {
    let changed = false;
    for (let channel = 0; channel < channels; channel++) {
      const change = Math.abs(pixels[pixel * channels + channel] - original[pixel * channels + channel]);
      l1Distance += change;
      squaredSum += change * change;
      maxAbsoluteChange = Math.max(maxAbsoluteChange, change);
      changed ||= change > changedPixelThreshold;
    }
    if (changed) changedPixels++;
  }
  return {
    kind: edit.kind ?? 'pixel',
    pixels,
    probabilities: edit.probabilities,
    scores: edit.scores,
    originalProbabilities: edit.originalProbabilities,
    targetCluster: edit.target,
    valid: argMax(edit.probabilities) === edit.target,
    l1Distance,
    l2Distance: Math.sqrt(squaredSum),
    meanAbsoluteChange: l1Distance / pixels.length,
    changedPixelShare: changedPixels / (pixels.length / channels),
    maxAbsoluteChange,
    steps: edit.steps,
    converged: edit.converged,
    durationMs: performance.now() - edit.startedAt,
  };
}
