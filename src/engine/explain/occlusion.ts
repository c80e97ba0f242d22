// Shared by the occlusion methods: score many masked copies of one image on onnxruntime's device, building each
// batch only when it runs.
import type { DeviceKind } from '../../protocol/options';
import { explainGraphNames as names, type ExplainGraphs } from '../runtime/explainGraph';
import type { ExplainableModel, Pixels } from './explainer';
import { explainSession, runPaddedBatches, sessionBatch } from './onDevice';
import { cosineRows, type Reference } from './target';

/**
 * The target's value for x·(1 − m) over every mask m [count, S, S] of the image, `batchSize` copies a run (the
 * last run padded with black images).
 */
export async function scoreMasked(net: ExplainableModel | ExplainGraphs, image: Pixels, masks: Float32Array, count: number, reference: Reference, batchSize: number, device?: DeviceKind): Promise<{ values: Float32Array; device: DeviceKind }> {
  const graphs = 'graphs' in net ? net.graphs : net;
  const { channels, prototypes } = graphs;
  const { sizePx } = image;
  const pixels = sizePx * sizePx;
  const batch = sessionBatch(Math.min(batchSize, count));
  const session = await explainSession(graphs.owner, `forward ${batch}×${sizePx}px`, () => graphs.forward({ batch, imageSizePx: sizePx }), device);
  const values = new Float32Array(count);
  const compose = (chunk: Float32Array, start: number, size: number) => {
    for (let n = 0; n < size; n++) {
      const mask = (start + n) * pixels;
      const offset = n * pixels * channels;
      for (let i = 0; i < pixels; i++) {
        const keep = 1 - masks[mask + i];
        for (let c = 0; c < channels; c++) chunk[offset + i * channels + c] = image.pixels[i * channels + c] * keep;
      }
    }
  };
  await runPaddedBatches(session, count, batch, { sizePx, channels }, [names.scores, names.features], compose, (outputs, start, size) => {
    if (reference.kind === 'prototype') {
      const scores = outputs[names.scores].data;
      for (let n = 0; n < size; n++) values[start + n] = scores[n * prototypes + reference.prototype];
    } else {
      const width = reference.features.length;
      values.set(cosineRows(outputs[names.features].data.subarray(0, size * width), reference.features, size), start);
    }
  });
  return { values, device: session.device };
}
