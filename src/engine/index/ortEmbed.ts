// Indexing through onnxruntime: the engine's own network, exported to ONNX in memory, embeds the images on the
// chosen device.
import os from 'node:os';
import type { Matrix } from '../analysis/matrix';
import type { ImageSet } from '../data/decode';
import { throwIfCancelled, yieldToEventLoop, type JobContext } from '../jobContext';
import { weightsOf, type SwavModel } from '../model/model';
import { buildOnnxModel } from '../onnx/export';
import { OrtModel } from '../runtime/session';
import type { DeviceKind } from '../../protocol/options';

const batchSize = 256;
const gpuBatchSize = 2048;


/** Index rows for a set of images: backbone features, projections and prototype scores. */
export interface EmbedOutput {
  features: Matrix;
  embeddings: Matrix;
  scores: Matrix;
  /** Time spent in the network's forward passes alone (no model setup, no post-processing), where measured. */
  forwardMs?: number;
  /** What ran the forward passes. */
  device?: DeviceKind;
}

/** Embeds the set with onnxruntime; features come back L2-normalised. */
export async function embedWithOnnxRuntime(model: SwavModel, images: ImageSet, context: JobContext, fractionRange: [number, number]): Promise<EmbedOutput> {
  const bytes = buildOnnxModel(model.spec, weightsOf(model), { imageSizePx: images.imageSizePx });
  const session = await OrtModel.open(bytes, 'the run’s model (in memory)', { threads: Math.max(1, Math.min(4, os.cpus().length)) });
  const { imageSizePx: size, channels } = images;
  const count = images.records.length;
  const plane = size * size;
  const features: Float32Array[] = [];
  const embeddings: Float32Array[] = [];
  const scores: Float32Array[] = [];
  let featureDims = 0;
  let forwardMs = 0;
  try {
    // A GPU wants large batches to fill it; the CPU's caches want small ones.
    const step = session.device === 'cpu' ? batchSize : gpuBatchSize;
    for (let start = 0; start < count; start += step) {
      throwIfCancelled(context.signal);
      const batch = Math.min(step, count - start);
      const input = new Float32Array(batch * channels * plane);
      for (let n = 0; n < batch; n++) {
        const source = (start + n) * plane * channels;
        for (let p = 0; p < plane; p++) {
          for (let c = 0; c < channels; c++) input[(n * channels + c) * plane + p] = images.pixels[source + p * channels + c] / 255;
        }
      }
      const forwardStart = performance.now();
      const out = await session.run({ images: { data: input, dims: [batch, channels, size, size] } }, ['features', 'embedding', 'prototype_scores']);
      forwardMs += performance.now() - forwardStart;
      featureDims = out.features.dims[1];
      features.push(normalizeRows(out.features.data as Float32Array, featureDims));
      embeddings.push(out.embedding.data as Float32Array);
      scores.push(out.prototype_scores.data as Float32Array);
      const done = start + batch;
      context.progress({ phase: 'index', fraction: fractionRange[0] + (fractionRange[1] - fractionRange[0]) * (done / count), message: `Embedding images ${done}/${count} (onnxruntime)` });
      await yieldToEventLoop();
    }
  } finally {
    await session.dispose();
  }
  const join = (parts: Float32Array[], dims: number): Matrix => {
    const data = new Float32Array(count * dims);
    let offset = 0;
    for (const part of parts) {
      data.set(part, offset);
      offset += part.length;
    }
    return { data, rows: count, dims };
  };
  return { features: join(features, featureDims), embeddings: join(embeddings, model.spec.projectionDim), scores: join(scores, model.spec.prototypes), forwardMs, device: session.device };
}

function normalizeRows(values: Float32Array, dims: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let row = 0; row < values.length / dims; row++) {
    let norm = 0;
    for (let d = 0; d < dims; d++) norm += values[row * dims + d] ** 2;
    const scale = 1 / Math.max(Math.sqrt(norm), 1e-12);
    for (let d = 0; d < dims; d++) out[row * dims + d] = values[row * dims + d] * scale;
  }
  return out;
}
