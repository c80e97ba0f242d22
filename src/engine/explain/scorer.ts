// The batched forward "scorer" the region and mask counterfactuals search with: many edited copies of an
// image in, prototype scores and probabilities out, as runtime/explainGraph.ts's forward graph on onnxruntime's
// device. A caller hands over every candidate at once and never runs one pass per candidate.
import type { DeviceKind } from '../../protocol/options';
import { currentDevice } from '../runtime/device';
import { explainGraphNames as names } from '../runtime/explainGraph';
import type { ExplainableModel } from './explainer';
import { copyImages, explainSession, runPaddedBatches } from './onDevice';

export interface ScoredImages {
  /** Prototype scores, N·K values. */
  scores: Float32Array;
  /** softmax(scores / T) per image, N·K values. */
  probabilities: Float32Array;
}

export interface ClusterScorer {
  readonly imageSizePx: number;
  readonly channels: number;
  readonly prototypes: number;
  /** Where the forward passes run. */
  readonly device: DeviceKind;
  /** Scores `count` images given as count·S·S·C values in [0, 1], NHWC. */
  score(images: Float32Array, count: number): Promise<ScoredImages>;
  /** The images a call for `count` computes, padding included (absent: `count`): what a call costs. */
  imagesComputed?(count: number): number;
}

/** Images per onnxruntime run: the forward graph has a fixed batch, and the last chunk is padded. */
const graphBatch = 128;

/**
 * The forward graph's batch: 128 for the engine's own network and on a GPU; 1 for a frozen import on the CPU,
 * whose images cost as much one by one as batched (a ResNet-50 at 224 px: ~0.2 s each) and where padding a
 * single image to 128 would cost half a minute.
 */
export function forwardBatchFor(net: ExplainableModel, device: DeviceKind): number {
  return net.graphs.kind === 'imported' && device === 'cpu' ? 1 : graphBatch;
}

export function softmaxRows(scores: Float32Array, prototypes: number, temperature: number): Float32Array {
  const probabilities = new Float32Array(scores.length);
  for (let row = 0; row < scores.length / prototypes; row++) {
    const offset = row * prototypes;
    let highest = -Infinity;
    for (let k = 0; k < prototypes; k++) highest = Math.max(highest, scores[offset + k] / temperature);
    let sum = 0;
    for (let k = 0; k < prototypes; k++) sum += probabilities[offset + k] = Math.exp(scores[offset + k] / temperature - highest);
    for (let k = 0; k < prototypes; k++) probabilities[offset + k] /= sum;
  }
  return probabilities;
}

/** The forward graph on onnxruntime's device as a scorer of `imageSizePx` images. */
export async function scorerFor(net: ExplainableModel, imageSizePx: number, channels: number): Promise<ClusterScorer> {
  const { graphs } = net;
  const batch = forwardBatchFor(net, currentDevice().device);
  const session = await explainSession(graphs.owner, `forward ${batch}×${imageSizePx}px`, () => graphs.forward({ batch, imageSizePx }));
  const perImage = imageSizePx * imageSizePx * channels;
  const prototypes = net.prototypes;
  return {
    imageSizePx,
    channels,
    prototypes,
    device: session.device,
    async score(images, count) {
      const scores = new Float32Array(count * prototypes);
      await runPaddedBatches(session, count, batch, { sizePx: imageSizePx, channels }, [names.scores], copyImages(images, perImage), (outputs, start, size) =>
        scores.set(outputs[names.scores].data.subarray(0, size * prototypes), start * prototypes),
      );
      return { scores, probabilities: softmaxRows(scores, prototypes, net.temperature) };
    },
    imagesComputed: (count) => Math.ceil(count / batch) * batch,
  };
}
