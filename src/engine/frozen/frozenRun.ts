// A run's frozen imported backbone at work: its onnxruntime session (kept between queries), the index rows and
// single-image descriptions it gives with the run's head, and how many augmented views its training may afford.

import path from 'node:path';
import type { ImageSet } from '../data/decode';
import { EngineError } from '../errors';
import type { EmbedOutput } from '../index/indexer';
import type { JobContext } from '../jobContext';
import type { SwavModel } from '../model/model';
import { imageSetFeatures } from './cropFeatures';
import { embedFeatures } from './headTrainer';
import { OrtBackbone } from './ortBackbone';
import { readFrozenBackbone, type BackboneRecord } from './backboneFile';

const ortCache = new Map<string, { key: string; backbone: Promise<OrtBackbone> }>();

/** An onnxruntime session on the run's backbone, kept between queries (reopened when the record changes). */
export async function openFrozenBackbone(runDir: string, record: BackboneRecord): Promise<OrtBackbone> {
  const resolved = path.resolve(runDir);
  const key = JSON.stringify(record);
  const cached = ortCache.get(resolved);
  if (cached && cached.key === key) return cached.backbone;
  if (cached) void cached.backbone.then((old) => old.dispose()).catch(() => undefined);
  const backbone = readFrozenBackbone(resolved, record).then(({ bytes, graph }) => OrtBackbone.fromBytes(bytes, graph, backboneOptions(record)));
  ortCache.set(resolved, { key, backbone });
  backbone.catch(() => ortCache.delete(resolved));
  return backbone;
}

export function backboneOptions(record: BackboneRecord) {
  return { inputMean: record.inputMean, inputStd: record.inputStd, featureOutput: record.featureOutput };
}

/** Index rows for `images`: L2-normalised backbone features from onnxruntime, then the head's embeddings and scores. */
export async function embedWithBackbone(backbone: OrtBackbone, model: SwavModel, images: ImageSet, context: JobContext): Promise<EmbedOutput> {
  const count = images.records.length;
  const { features, featureDim } = await imageSetFeatures(backbone, images, context);
  checkFeatureDim(featureDim, model, backbone.file);
  const { embeddings, scores } = await embedFeatures(model, features, count);
  return {
    features: { data: l2NormalizeRows(features, featureDim), rows: count, dims: featureDim },
    embeddings: { data: embeddings, rows: count, dims: model.spec.projectionDim },
    scores: { data: scores, rows: count, dims: model.spec.prototypes },
  };
}

/** One decoded image (NHWC bytes at the run's size): L2-normalised features and its cluster. */
export async function describeWithBackbone(backbone: OrtBackbone, model: SwavModel, pixels: ArrayLike<number>, sizePx: number, channels: number): Promise<{ features: Float32Array; cluster: number }> {
  const raw = await backbone.features(Float32Array.from(pixels, (value) => value / 255), 1, sizePx, sizePx, channels);
  checkFeatureDim(raw.length, model, backbone.file);
  const { scores } = await embedFeatures(model, raw, 1);
  return { features: l2NormalizeRows(raw, raw.length), cluster: scores.indexOf(Math.max(...scores)) };
}

/** The share of a time budget the backbone's passes over the bank may take; the head's training gets the rest. */
const bankBudgetShare = 0.5;

/**
 * The views per image a frozen run's bank holds: the full bank (as many as the epochs would use, up to 8 global
 * and 4 local), else 2 + 2, else once per image and crop scale, the largest whose backbone passes fit in half the
 * time budget (`minutes` 0: no budget, the full bank).
 */
export function bankViews(options: { epochs: number; minutes: number; localCrops: number; images: number; secondsPerImage: number }): { views: { global: number; local: number }; full: { global: number; local: number } } {
  const local = (count: number) => (options.localCrops === 0 ? 0 : count);
  const ladder = [
    { global: Math.min(8, Math.max(2, 2 * options.epochs)), local: local(Math.min(options.localCrops * options.epochs, Math.max(options.localCrops, 4))) },
    { global: 2, local: local(Math.min(options.localCrops, 2)) },
    { global: 1, local: local(1) },
  ];
  const budgetSeconds = options.minutes > 0 ? options.minutes * 60 * bankBudgetShare : Infinity;
  const fits = (step: { global: number; local: number }) => (step.global + step.local) * options.images * options.secondsPerImage <= budgetSeconds;
  return { views: ladder.find(fits) ?? ladder[ladder.length - 1], full: ladder[0] };
}

/** BAD_CHECKPOINT where the backbone's features are not the width the head was trained on. */
export function checkFeatureDim(featureDim: number, model: SwavModel, file: string): void {
  if (featureDim !== model.spec.width) {
    throw new EngineError('BAD_CHECKPOINT', `The backbone ${file} gives ${featureDim} features, but the run's head was trained on ${model.spec.width}. Train the run again.`);
  }
}

function l2NormalizeRows(values: Float32Array, dims: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let offset = 0; offset < values.length; offset += dims) {
    let sum = 0;
    for (let d = 0; d < dims; d++) sum += values[offset + d] ** 2;
    const scale = 1 / Math.max(Math.sqrt(sum), 1e-12);
    for (let d = 0; d < dims; d++) out[offset + d] = values[offset + d] * scale;
  }
  return out;
}
