// The export job: a trained run's checkpoint written as one ONNX file, checked in onnxruntime before it is written.
import path from 'node:path';
import type { ExportOnnxResult } from '../../protocol/engine';
import { EngineError } from '../errors';
import { readFrozenBackbone } from '../frozen/backboneFile';
import { appendHeadToBackbone, buildOnnxModel, exportOpset, type WeightMap } from '../onnx/export';
import { imageInput } from '../onnx/graph';
import { OrtModel } from '../runtime/session';
import { writeFileAtomic } from '../util/atomicFile';
import { checkpointPath, readCheckpointArchive } from '../model/checkpoint';

/**
 * Reads a run's checkpoint (no tensors, no backend) and writes it as ONNX to `outPath`, atomically.
 * Unless `verify` is false, onnxruntime first loads the model and runs it once.
 */
export async function exportOnnx(runDir: string, outPath: string, options: { verify?: boolean } = {}): Promise<ExportOnnxResult> {
  const startedAt = Date.now();
  const resolvedRun = path.resolve(runDir);
  const resolvedOut = path.resolve(outPath);
  const file = checkpointPath(resolvedRun);
  const { header, arrays } = await readCheckpointArchive(file);
  const weights: WeightMap = new Map();
  for (const [key, { shape, values }] of arrays) {
    if (key.startsWith('model.')) weights.set(key.slice('model.'.length), { shape, values: values as Float32Array });
  }
  const metadata = {
    'cluster-lens.checkpointStep': String(header.step),
    'cluster-lens.temperature': String(header.options.temperature),
  };
  let bytes: Uint8Array;
  let inputName = 'images';
  let featureDim = header.spec.width * 2 ** (header.spec.blocksPerStage.length - 1);
  if (header.backbone) {
    // A frozen imported backbone: its own graph, with the trained head appended (the head's spec.width is the feature size).
    const backbone = await readFrozenBackbone(resolvedRun, header.backbone);
    bytes = appendHeadToBackbone({ ...backbone, featureOutput: header.backbone.featureOutput }, { spec: header.spec, weights }, metadata);
    inputName = imageInput(backbone.graph).name;
    featureDim = header.spec.width;
  } else {
    bytes = buildOnnxModel(header.spec, weights, { imageSizePx: header.options.imageSizePx, metadata });
  }
  if (options.verify !== false) await verifyExport(bytes, resolvedOut, inputName, header.spec.channels, header.options.imageSizePx, [header.spec.projectionDim, header.spec.prototypes]);
  await writeFileAtomic(resolvedOut, bytes);
  return {
    kind: 'exportOnnx',
    runDir: resolvedRun,
    outPath: resolvedOut,
    bytes: bytes.length,
    opset: exportOpset,
    imageSizePx: header.options.imageSizePx,
    channels: header.spec.channels,
    featureDim,
    projectionDim: header.spec.projectionDim,
    prototypes: header.spec.prototypes,
    checkpointStep: header.step,
    durationMs: Date.now() - startedAt,
  };
}

/** Loads the model in onnxruntime and checks one run's output shapes and values, before the file is written. */
async function verifyExport(bytes: Uint8Array, outPath: string, inputName: string, channels: number, sizePx: number, dims: [number, number]): Promise<void> {
  const model = await OrtModel.open(bytes, outPath, { threads: 1 });
  try {
    const out = await model.run({ [inputName]: { data: new Float32Array(2 * channels * sizePx * sizePx).fill(0.5), dims: [2, channels, sizePx, sizePx] } }, ['embedding', 'prototype_scores']);
    const shapes = [out.embedding.dims, out.prototype_scores.dims].map((shape) => shape.join('×'));
    if (shapes[0] !== `2×${dims[0]}` || shapes[1] !== `2×${dims[1]}` || !out.embedding.data.every(Number.isFinite)) {
      throw new EngineError('INTERNAL', `The exported model gave outputs of shape ${shapes.join(' and ')} (expected 2×${dims[0]} and 2×${dims[1]}); nothing was written. Please report this.`);
    }
  } finally {
    await model.dispose();
  }
}
