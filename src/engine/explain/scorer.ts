// The batched forward "scorer" the region and mask counterfactuals search with: many edited copies of an
// image in, prototype scores and probabilities out. The engine's own network and a frozen import run as
// runtime/explainGraph.ts's forward graph on onnxruntime; any other ExplainableModel runs on tfjs. Either way a caller
// hands over every candidate at once and never runs one pass per candidate.
import * as tf from '@tensorflow/tfjs-core';
import type { DeviceKind } from '../../protocol/options';
import type { LogLevel } from '../../protocol/engine';
import { currentDevice } from '../runtime/device';
import { explainGraphNames as names } from '../runtime/explainGraph';
import type { ExplainableModel } from './explainer';
import { targetValue } from './target';
import { copyImages, deviceGraphs, explainSession, runPaddedBatches, runsOnDevice } from './onDevice';

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
  /** Where the forward passes run (tfjs runs on the CPU). */
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
  return net.graphs && !net.model && device === 'cpu' ? 1 : graphBatch;
}

function softmaxRows(scores: Float32Array, prototypes: number, temperature: number): Float32Array {
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

/** The network on tfjs, `batchSize` images per pass. */
export function tfjsScorer(net: ExplainableModel, imageSizePx: number, channels: number, batchSize: number): ClusterScorer {
  const perImage = imageSizePx * imageSizePx * channels;
  return {
    imageSizePx,
    channels,
    prototypes: net.prototypes,
    device: 'cpu',
    async score(images, count) {
      const scores = new Float32Array(count * net.prototypes);
      for (let start = 0; start < count; start += batchSize) {
        const size = Math.min(batchSize, count - start);
        const chunk = tf.tidy(() => net.outputs(net.featureMap(tf.tensor4d(images.subarray(start * perImage, (start + size) * perImage), [size, imageSizePx, imageSizePx, channels]))).scores);
        scores.set(chunk.dataSync() as Float32Array, start * net.prototypes);
        chunk.dispose();
      }
      return { scores, probabilities: softmaxRows(scores, net.prototypes, net.temperature) };
    },
  };
}

/**
 * The fastest scorer for `net`: the forward graph on onnxruntime's device for the engine's own network, tfjs
 * for the rest and wherever the graph cannot open (said in the log).
 */
export async function scorerFor(net: ExplainableModel, imageSizePx: number, channels: number, batchSize: number, log?: (level: LogLevel, message: string) => void): Promise<ClusterScorer> {
  const onTfjs = tfjsScorer(net, imageSizePx, channels, batchSize);
  if (!runsOnDevice(net)) return onTfjs;
  const graphs = deviceGraphs(net);
  try {
    const graphBatch = forwardBatchFor(net, currentDevice().device);
    const session = await explainSession(graphs.owner, `forward ${graphBatch}x${imageSizePx}`, () => graphs.forward({ batch: graphBatch, imageSizePx }));
    const perImage = imageSizePx * imageSizePx * channels;
    const prototypes = net.prototypes;
    return {
      imageSizePx,
      channels,
      prototypes,
      device: session.device,
      async score(images, count) {
        const scores = new Float32Array(count * prototypes);
        await runPaddedBatches(session, count, graphBatch, { sizePx: imageSizePx, channels }, [names.scores], copyImages(images, perImage), (outputs, start, size) =>
          scores.set(outputs[names.scores].data.subarray(0, size * prototypes), start * prototypes),
        );
        return { scores, probabilities: softmaxRows(scores, prototypes, net.temperature) };
      },
      imagesComputed: (count) => Math.ceil(count / graphBatch) * graphBatch,
    };
  } catch (error) {
    // A frozen import has no tfjs road where tfjs cannot run it: its error is the one to see.
    if (!net.model) throw error;
    log?.('warn', `The forward graph on ${currentDevice().device} failed to open (${String((error as Error)?.message ?? error).split('\n')[0]}); scoring on tfjs instead.`);
    return onTfjs;
  }
}

/** Prototype `prototype`'s score at the unedited image: from the scorer for a frozen import (tfjs may not run it), else tfjs. */
export async function prototypeScore(net: ExplainableModel, scorer: ClusterScorer, pixels: Float32Array, image: tf.Tensor4D, prototype: number): Promise<number> {
  if (net.graphs) return (await scorer.score(pixels, 1)).scores[prototype];
  return targetValue(net, image, { kind: 'prototype', prototype });
}
