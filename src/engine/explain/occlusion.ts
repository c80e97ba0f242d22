// Shared by the occlusion methods: score many masked copies of one image, building each batch only when it runs,
// on tfjs or, for the engine's own network, as batches of runtime/explainGraph.ts's forward graph on onnxruntime.
import * as tf from '@tensorflow/tfjs-core';
import type { DeviceKind } from '../../protocol/options';
import type { SwavModel } from '../model/model';
import { explainGraphNames as names, type ExplainGraphs } from '../runtime/explainGraph';
import type { ExplainableModel } from './explainer';
import { deviceGraphs, explainSession, runPaddedBatches } from './onDevice';
import { cosineRows, featuresOf, prototypeScoresOf, type Reference } from './target';

/**
 * The target's value for `compose(image, masks)` over every mask [count, S, S, 1], `batchSize` masks per
 * forward pass.
 */
export function scoreMasked(
  net: ExplainableModel,
  image: tf.Tensor4D,
  masks: Float32Array,
  count: number,
  reference: Reference,
  batchSize: number,
  compose: (image: tf.Tensor4D, masks: tf.Tensor4D) => tf.Tensor4D = (x, m) => tf.mul(x, tf.sub(1, m)) as tf.Tensor4D,
): Float32Array {
  const sizePx = image.shape[1];
  const pixels = sizePx * sizePx;
  const values = new Float32Array(count);
  for (let start = 0; start < count; start += batchSize) {
    const size = Math.min(batchSize, count - start);
    const chunk = tf.tidy(() => {
      const batchMasks = tf.tensor4d(masks.subarray(start * pixels, (start + size) * pixels), [size, sizePx, sizePx, 1]);
      const images = compose(image, batchMasks);
      return reference.kind === 'prototype' ? prototypeScoresOf(net, images, reference.prototype) : cosineRows(featuresOf(net, images), reference.features);
    });
    values.set(chunk.dataSync() as Float32Array, start);
    chunk.dispose();
  }
  return values;
}

/** What the masked copies are scored against on the device: a prototype, or reference features (F values). */
export type DeviceReference = { kind: 'prototype'; prototype: number } | { kind: 'features'; features: Float32Array };

/**
 * scoreMasked with its default compose x·(1 − m) on onnxruntime: `image` is S·S·C values (NHWC), the copies
 * are composed here and run `batchSize` at a time (the last batch padded with black images).
 */
export async function scoreMaskedOnDevice(
  model: SwavModel | ExplainGraphs,
  image: Float32Array,
  sizePx: number,
  masks: Float32Array,
  count: number,
  reference: DeviceReference,
  batchSize: number,
  device?: DeviceKind,
): Promise<{ values: Float32Array; device: DeviceKind }> {
  const graphs = deviceGraphs(model);
  const { channels, prototypes } = graphs;
  const pixels = sizePx * sizePx;
  const batch = Math.min(batchSize, count);
  const session = await explainSession(graphs.owner, `forward ${batch}×${sizePx}px`, () => graphs.forward({ batch, imageSizePx: sizePx }), device);
  const values = new Float32Array(count);
  const compose = (chunk: Float32Array, start: number, size: number) => {
    for (let n = 0; n < size; n++) {
      const mask = (start + n) * pixels;
      const offset = n * pixels * channels;
      for (let i = 0; i < pixels; i++) {
        const keep = 1 - masks[mask + i];
        for (let c = 0; c < channels; c++) chunk[offset + i * channels + c] = image[i * channels + c] * keep;
      }
    }
  };
  await runPaddedBatches(session, count, batch, { sizePx, channels }, [names.scores, names.features], compose, (outputs, start, size) => {
    if (reference.kind === 'prototype') {
      const scores = outputs[names.scores].data;
      for (let n = 0; n < size; n++) values[start + n] = scores[n * prototypes + reference.prototype];
    } else {
      const features = outputs[names.features].data;
      const width = reference.features.length;
      const referenceNorm = Math.hypot(...reference.features);
      for (let n = 0; n < size; n++) {
        let dot = 0;
        let squares = 0;
        for (let f = 0; f < width; f++) {
          const value = features[n * width + f];
          dot += value * reference.features[f];
          squares += value * value;
        }
        // as cosineRows: a·b / max(‖a‖‖b‖, 1e-12)
        values[start + n] = dot / Math.max(Math.sqrt(squares) * referenceNorm, 1e-12);
      }
    }
  });
  return { values, device: session.device };
}
