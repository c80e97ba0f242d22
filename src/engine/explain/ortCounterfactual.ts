// The counterfactual on onnxruntime's device: counterfactual.ts's search (same loss, Adam, stopping rule),
// each step one run of runtime/explainGraph.ts's step graph, which returns the probabilities at the edited
// image and the image after the step.
import type { DeviceKind, ExplainOptions } from '../../protocol/options';
import { throwIfCancelled, yieldToEventLoop } from '../jobContext';
import type { SwavModel } from '../model/model';
import { explainGraphNames as names, type ExplainGraphs } from '../runtime/explainGraph';
import { adam, describeEdit, holdsWithMargin, stepsPerYield } from './counterfactualSearch';
import type { CounterfactualOutcome } from './explainer';
import { deviceGraphs, explainSession } from './onDevice';

/** Edits `image` (S·S·C values in [0, 1], NHWC) towards prototype `target`, as counterfactual() does. */
export async function counterfactualOnDevice(
  model: SwavModel | ExplainGraphs,
  image: Float32Array,
  imageSizePx: number,
  temperature: number,
  target: number,
  options: ExplainOptions,
  signal?: AbortSignal,
  device?: DeviceKind,
): Promise<CounterfactualOutcome & { device: DeviceKind }> {
  const startedAt = performance.now();
  const graphs = deviceGraphs(model);
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
    // As the tfjs loop: out of steps means not converged, whatever the last image scores.
    const outOfSteps = steps === options.counterfactualSteps;
    const converged = !outOfSteps && holdsWithMargin(probabilities, target, options.counterfactualMargin);
    if (converged || outOfSteps) {
      const outcome = describeEdit({ pixels: state.edited, original: image, channels: spec.channels, probabilities, scores: outputs[names.scores].data, originalProbabilities, target, steps, converged, startedAt });
      return { ...outcome, device: session.device };
    }
    steps++;
    state = { edited: outputs[names.next(names.images)].data, first: outputs[names.next(names.firstMoment)].data, second: outputs[names.next(names.secondMoment)].data };
    if (steps % stepsPerYield === 0 && signal) {
      await yieldToEventLoop();
      throwIfCancelled(signal);
    }
  }
}
