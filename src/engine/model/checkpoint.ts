import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TrainOptions } from '../../protocol/options';
import { EngineError, runFileError } from '../errors';
import { imageSizeRange, isImageSize } from '../runFolder';
import { readArchive, writeArchive, type ArchiveArray } from '../util/tensorArchive';
import { convLayers, networkLayout } from './layout';
import type { ModelSpec, Parameter, SwavModel } from './model';

export interface CheckpointHeader {
  format: 'cluster-lens-checkpoint';
  spec: ModelSpec;
  options: TrainOptions;
  epoch: number;
  step: number;
  /** Steps within the current epoch already done (0 when the epoch completed). */
  elapsedMs: number;
  randomState: number;
  /** Where it trained; checkpoints from before TensorFlow.js was retired name its backend (`backend`) instead. */
  device?: string;
  backend?: string;
  savedAt: string;
  /**
   * A frozen imported backbone: the model holds only the head and prototypes, and features come from this
   * ONNX file (a copy lives in the run folder, see frozenBackbonePath). `path` is where it was imported from.
   */
  backbone?: { path: string; sha256: string; featureOutput: string; inputMean: number[]; inputStd: number[]; imageSizePx: number };
}

export interface LoadedCheckpoint {
  header: CheckpointHeader;
  model: SwavModel;
  /** Optimiser and other non-model tensors, by name. */
  extra: Map<string, { shape: number[]; values: Float32Array }>;
}

export const checkpointFileName = 'checkpoint.ckpt';

export function checkpointPath(runDir: string): string {
  return path.join(runDir, checkpointFileName);
}

/** `extra`: named arrays saved beside the weights (the optimiser's moments). */
export async function saveCheckpoint(filePath: string, header: CheckpointHeader, model: SwavModel, extra: Map<string, { shape: number[]; values: Float32Array }>): Promise<void> {
  const arrays = new Map<string, { shape: number[]; values: ArchiveArray }>();
  for (const [name, variable] of model.variables) arrays.set(`model.${name}`, { shape: variable.shape, values: variable.values });
  for (const [name, array] of extra) arrays.set(name, array);
  await writeArchive(filePath, header, arrays);
}

/** A checkpoint's header and raw arrays, no tensors, checked (validateCheckpoint); errors name the file and say what to do. */
export async function readCheckpointArchive(filePath: string): Promise<Awaited<ReturnType<typeof readArchive<CheckpointHeader>>>> {
  if (!existsSync(filePath)) {
    throw new EngineError('NO_CHECKPOINT', `No checkpoint at ${filePath}. Train a model first (cluster-lens train <images> --out <run-dir>).`);
  }
  let archive;
  try {
    archive = await readArchive<CheckpointHeader>(filePath);
  } catch (error) {
    throw new EngineError('BAD_CHECKPOINT', `The checkpoint ${filePath} cannot be read (${(error as Error).message}). Train again, or restore the file from a backup.`, String(error));
  }
  validateCheckpoint(filePath, archive.header, archive.arrays);
  return archive;
}

/** Bounds on a checkpoint's spec: wide enough for any run the engine trains or any imported backbone's features. */
const specBounds = { width: 65536, hiddenDim: 65536, projectionDim: 65536, prototypes: 100000, stages: 16, blocks: 64 };

const isCount = (value: unknown, min: number, max: number): value is number => Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
const isFiniteList = (value: unknown): value is number[] => Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v));

/**
 * The variables a spec's network needs, by name, with their shapes: createModel's for the engine's own network
 * (networkLayout's convolutions and BatchNorms, then the head and prototypes), the head and prototypes alone for a
 * frozen backbone's (createHeadModel: the features are `spec.width` wide).
 */
export function expectedVariables(spec: ModelSpec, frozen: boolean): Map<string, number[]> {
  const expected = new Map<string, number[]>();
  const batchNorm = (name: string, channels: number) => {
    for (const part of ['gamma', 'beta', 'runningMean', 'runningVariance']) expected.set(`${name}.${part}`, [channels]);
  };
  let features = spec.width;
  if (!frozen) {
    const layout = networkLayout(spec);
    for (const layer of convLayers(layout)) {
      expected.set(layer.conv, [layer.kernel, layer.kernel, layer.inChannels, layer.outChannels]);
      batchNorm(layer.batchNorm, layer.outChannels);
    }
    features = layout.featureChannels;
  }
  expected.set('head.fc1.weight', [features, spec.projectionHiddenDim]);
  expected.set('head.fc1.bias', [spec.projectionHiddenDim]);
  batchNorm('head.bn', spec.projectionHiddenDim);
  expected.set('head.fc2.weight', [spec.projectionHiddenDim, spec.projectionDim]);
  expected.set('head.fc2.bias', [spec.projectionDim]);
  expected.set('prototypes', [spec.prototypes, spec.projectionDim]);
  return expected;
}

/**
 * Checks a checkpoint before anything is built from it (BAD_CHECKPOINT naming the file and the field): the spec's
 * sizes are sane and bounded, every array's element count is its shape's product and its values are finite, and
 * every variable the spec's network needs is there with its shape.
 */
export function validateCheckpoint(filePath: string, header: CheckpointHeader, arrays: Map<string, { shape: number[]; values: ArchiveArray }>): void {
  const fix = 'Train the run again, or restore the checkpoint from a backup';
  const bad = (field: string, problem: string) => runFileError(filePath, field, problem, fix, 'BAD_CHECKPOINT');
  if (typeof header !== 'object' || header === null || header.format !== 'cluster-lens-checkpoint') {
    throw new EngineError('BAD_CHECKPOINT', `${filePath} is not a Cluster Lens checkpoint.`);
  }
  const spec = header.spec as Partial<ModelSpec> | undefined;
  if (typeof spec !== 'object' || spec === null) throw bad('"spec"', 'is missing');
  const frozen = header.backbone !== undefined;
  const show = (value: unknown) => JSON.stringify(value);
  if (spec.channels !== 1 && spec.channels !== 3) throw bad('"spec.channels"', `is ${show(spec.channels)}; it must be 1 or 3`);
  if (spec.stemStride !== 1 && spec.stemStride !== 2) throw bad('"spec.stemStride"', `is ${show(spec.stemStride)}; it must be 1 or 2`);
  if (!isCount(spec.width, 1, specBounds.width)) throw bad('"spec.width"', `is ${show(spec.width)}; it must be a whole number from 1 to ${specBounds.width}`);
  if (spec.architecture !== undefined && spec.architecture !== 'resnet' && spec.architecture !== 'plain') throw bad('"spec.architecture"', `is ${show(spec.architecture)}; it must be "resnet" or "plain"`);
  const blocks = spec.blocksPerStage;
  if (frozen) {
    if (!(Array.isArray(blocks) && blocks.length === 1 && blocks[0] === 0)) throw bad('"spec.blocksPerStage"', `is ${show(blocks)}; a head on an imported backbone has [0]`);
  } else if (!(Array.isArray(blocks) && blocks.length >= 1 && blocks.length <= specBounds.stages && blocks.every((count) => isCount(count, 1, specBounds.blocks)))) {
    throw bad('"spec.blocksPerStage"', `is ${show(blocks)}; it must be a list of 1 to ${specBounds.stages} whole numbers from 1 to ${specBounds.blocks}`);
  }
  if (!frozen && spec.width * 2 ** (blocks.length - 1) > specBounds.width) throw bad('"spec.width"', `is ${spec.width}; with ${blocks.length} stages the last is wider than ${specBounds.width} channels`);
  if (!isCount(spec.projectionHiddenDim, 1, specBounds.hiddenDim)) throw bad('"spec.projectionHiddenDim"', `is ${show(spec.projectionHiddenDim)}; it must be a whole number from 1 to ${specBounds.hiddenDim}`);
  if (!isCount(spec.projectionDim, 1, specBounds.projectionDim)) throw bad('"spec.projectionDim"', `is ${show(spec.projectionDim)}; it must be a whole number from 1 to ${specBounds.projectionDim}`);
  if (!isCount(spec.prototypes, 1, specBounds.prototypes)) throw bad('"spec.prototypes"', `is ${show(spec.prototypes)}; it must be a whole number from 1 to ${specBounds.prototypes}`);
  // The engine's own network normalises each input channel; a frozen backbone's head may carry none (its ONNX input does).
  for (const field of ['inputMean', 'inputStd'] as const) {
    const values = spec[field];
    const lengthOk = Array.isArray(values) && (frozen ? values.length <= 3 : values.length === spec.channels);
    if (!isFiniteList(values) || !lengthOk || (field === 'inputStd' && values.some((v) => v <= 0))) {
      throw bad(`"spec.${field}"`, `is ${show(values)}; it must be ${frozen ? 'up to 3' : spec.channels} finite numbers${field === 'inputStd' ? ', each > 0' : ''}`);
    }
  }
  const options = header.options as Partial<TrainOptions> | undefined;
  if (typeof options !== 'object' || options === null) throw bad('"options"', 'is missing');
  if (options.imageSizePx !== undefined && !isImageSize(options.imageSizePx)) {
    throw bad('"options.imageSizePx"', `is ${show(options.imageSizePx)}; it must be a whole number of pixels from ${imageSizeRange.min} to ${imageSizeRange.max}`);
  }
  for (const field of ['epoch', 'step'] as const) {
    if (!(Number.isSafeInteger(header[field]) && header[field] >= 0)) throw bad(`"${field}"`, `is ${show(header[field])}; it must be a whole number ≥ 0`);
  }
  if (frozen) {
    const backbone = header.backbone as Partial<NonNullable<CheckpointHeader['backbone']>> | null;
    if (typeof backbone !== 'object' || backbone === null) throw bad('"backbone"', 'is not an object');
    for (const field of ['path', 'sha256', 'featureOutput'] as const) {
      if (typeof backbone[field] !== 'string' || backbone[field].length === 0) throw bad(`"backbone.${field}"`, `is ${show(backbone[field])}; it must be a string`);
    }
    if (!isFiniteList(backbone.inputMean) || !isFiniteList(backbone.inputStd) || backbone.inputStd.some((v) => v <= 0)) throw bad('"backbone.inputMean"/"backbone.inputStd"', 'must be lists of finite numbers (std > 0)');
    if (!isImageSize(backbone.imageSizePx)) throw bad('"backbone.imageSizePx"', `is ${show(backbone.imageSizePx)}; it must be a whole number of pixels from ${imageSizeRange.min} to ${imageSizeRange.max}`);
  }

  for (const [name, { shape, values }] of arrays) {
    if (!(Array.isArray(shape) && shape.every((size) => Number.isSafeInteger(size) && size >= 0))) throw bad(`array "${name}"`, `has shape ${show(shape)}; it must be a list of whole numbers`);
    const count = shape.reduce((product, size) => product * size, 1);
    if (count !== values.length) throw bad(`array "${name}"`, `holds ${values.length} values, but its shape [${shape.join(', ')}] needs ${count}`);
    if (values instanceof Float32Array) {
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i])) throw bad(`array "${name}"`, `holds ${values[i]} at element ${i}; every value must be finite`);
      }
    }
  }
  for (const [name, shape] of expectedVariables(spec as ModelSpec, frozen)) {
    const found = arrays.get(`model.${name}`);
    if (!found) throw bad(`variable "${name}"`, `is missing; the network of "spec" needs it with shape [${shape.join(', ')}]`);
    if (!(found.values instanceof Float32Array)) throw bad(`variable "${name}"`, 'is not float32');
    if (found.shape.length !== shape.length || found.shape.some((size, i) => size !== shape[i])) {
      throw bad(`variable "${name}"`, `has shape [${found.shape.join(', ')}]; the network of "spec" needs [${shape.join(', ')}]`);
    }
  }
}

/** Loads a checkpoint into a fresh parameter store; errors name the file and say what to do. */
export async function loadCheckpoint(filePath: string): Promise<LoadedCheckpoint> {
  const { header, arrays } = await readCheckpointArchive(filePath);
  const variables = new Map<string, Parameter>();
  const extra = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const [key, { shape, values }] of arrays) {
    if (key.startsWith('model.')) {
      const name = key.slice('model.'.length);
      const trainable = !name.endsWith('.runningMean') && !name.endsWith('.runningVariance');
      variables.set(name, { shape, values: values as Float32Array, trainable });
    } else {
      extra.set(key, { shape, values: values as Float32Array });
    }
  }
  return { header, model: { spec: header.spec, variables }, extra };
}
