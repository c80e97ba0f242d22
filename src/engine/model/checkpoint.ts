import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TrainOptions } from '../../protocol/options';
import { EngineError } from '../errors';
import { readArchive, writeArchive, type ArchiveArray } from '../util/tensorArchive';
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

/** A checkpoint's header and raw arrays, no tensors; errors name the file and say what to do. */
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
  const { header, arrays } = archive;
  if (header?.format !== 'cluster-lens-checkpoint') {
    throw new EngineError('BAD_CHECKPOINT', `${filePath} is not a Cluster Lens checkpoint.`);
  }
  return archive;
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
      variables.set(name, { shape, values: Float32Array.from(values as Float32Array), trainable });
    } else {
      extra.set(key, { shape, values: values as Float32Array });
    }
  }
  return { header, model: { spec: header.spec, variables }, extra };
}
