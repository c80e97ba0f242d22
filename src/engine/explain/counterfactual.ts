// Pixel counterfactual, the seed's method and the baseline the region and mask methods are measured against:
// the smallest edit that moves the image into a target cluster.
// min over x' of −log p(target | x') + λ·MSE(x', x) + λ_tv·TV(x') + μ·‖x' − x‖₂, by Adam, x' clamped to [0, 1],
// stopping as soon as the target holds with a margin.
import type { DeviceKind, ExplainOptions } from '../../protocol/options';
import { throwIfCancelled, yieldToEventLoop } from '../jobContext';
import { explainGraphNames as names, type ExplainGraphs } from '../runtime/explainGraph';
import { adam, describeEdit, holdsWithMargin, stepsPerYield } from './counterfactualSearch';
import type { CounterfactualOutcome, Explainer } from './explainer';
import { explainSession } from './onDevice';

export type { CounterfactualOutcome };

/**
 * Edits `image` (S·S·C values in [0, 1], NHWC) towards prototype `target`: each step one run of
 * runtime/explainGraph.ts's step graph, which returns the probabilities at the edited image and the image after the step.
 */
export async function counterfactual(
  graphs: ExplainGraphs,
  image: Float32Array,
  imageSizePx: number,
  temperature: number,
  target: number,
  options: ExplainOptions,
  signal?: AbortSignal,
  device?: DeviceKind,
): Promise<CounterfactualOutcome & { device: DeviceKind; originalScores: Float32Array }> {
  const startedAt = performance.now();
  const spec = { channels: graphs.channels, prototypes: graphs.prototypes };
  const settings = {
    imageSizePx,
    temperature,
    mseWeight: options.counterfactualMseWeight,
    tvWeight: options.counterfactualTvWeight,
    l2Weight: options.counterfactualL2Weight,
    learningRate: options.counterfactualLearningRate,
    ...adam,
  };
  const session = await explainSession(graphs.owner, `counterfactual ${JSON.stringify(settings)}`, () => graphs.counterfactual(settings), device);
  const dims = [1, imageSizePx, imageSizePx, spec.channels];
  const oneHot = new Float32Array(spec.prototypes);
  oneHot[target] = 1;
  const fixed = { [names.original]: { data: image, dims }, [names.target]: { data: oneHot, dims: [1, spec.prototypes] } };
  let state: Record<'edited' | 'first' | 'second', Float32Array> = { edited: Float32Array.from(image), first: new Float32Array(image.length), second: new Float32Array(image.length) };
  let steps = 0;
  let originalProbabilities: Float32Array | undefined;
  let originalScores: Float32Array | undefined;
  for (;;) {
    // The corrections of step `steps + 1`; the run also gives the probabilities at the current image.
    const outputs = await session.run(
      {
        ...fixed,
        [names.images]: { data: state.edited, dims },
        [names.firstMoment]: { data: state.first, dims },
        [names.secondMoment]: { data: state.second, dims },
        [names.corrections]: { data: Float32Array.of(1 - adam.beta1 ** (steps + 1), 1 - adam.beta2 ** (steps + 1)), dims: [2] },
      },
      [names.probabilities, names.scores, names.next(names.images), names.next(names.firstMoment), names.next(names.secondMoment)],
    );
    const probabilities = outputs[names.probabilities].data;
    originalProbabilities ??= probabilities;
    originalScores ??= outputs[names.scores].data;
    // Out of steps means not converged, whatever the last image scores.
    const outOfSteps = steps === options.counterfactualSteps;
    const converged = !outOfSteps && holdsWithMargin(probabilities, target, options.counterfactualMargin);
    if (converged || outOfSteps) {
      const outcome = describeEdit({ pixels: state.edited, original: image, channels: spec.channels, probabilities, scores: outputs[names.scores].data, originalProbabilities, target, steps, converged, startedAt });
      return { ...outcome, device: session.device, originalScores: originalScores! };
    }
    steps++;
    state = { edited: outputs[names.next(names.images)].data, first: outputs[names.next(names.firstMoment)].data, second: outputs[names.next(names.secondMoment)].data };
    if (steps % stepsPerYield === 0 && signal) {
      await yieldToEventLoop();
      throwIfCancelled(signal);
    }
  }
}

/** The diff as a heatmap: max over channels of |x' − x|, scaled so that the largest change is 1. */
export function differenceMap(outcome: CounterfactualOutcome, original: Float32Array, channels: number): Float32Array {
  const pixels = original.length / channels;
  const map = new Float32Array(pixels);
  for (let pixel = 0; pixel < pixels; pixel++) {
    for (let channel = 0; channel < channels; channel++) {
      map[pixel] = Math.max(map[pixel], Math.abs(outcome.pixels[pixel * channels + channel] - original[pixel * channels + channel]));
    }
  }
  return outcome.maxAbsoluteChange > 0 ? map.map((value) => value / outcome.maxAbsoluteChange) : map;
}

export const counterfactualExplainer: Explainer = {
  method: 'counterfactual-pixel',
  description: 'Pixel counterfactual (the seed\'s): the smallest edit (Adam on −log p + λ·MSE + λ_tv·TV + 0.01·‖Δ‖₂) that moves the image into the target cluster',
  targets: ['prototype'],
  defaultTarget: 'nearest-other-cluster',
  async explain({ net, image, target, options, signal }) {
    if (target.kind !== 'prototype') throw new Error('a counterfactual needs a target cluster');
    const { device, originalScores, ...outcome } = await counterfactual(net.graphs, image.pixels, image.sizePx, net.temperature, target.prototype, options, signal);
    // The first step's run scored the unedited image.
    return { heatmap: differenceMap(outcome, image.pixels, image.channels), score: originalScores[target.prototype], counterfactual: outcome, device };
  },
};
