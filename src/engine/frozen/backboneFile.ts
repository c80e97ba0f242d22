// The ONNX file a frozen-backbone run was trained on: its copy in the run folder, or the original if unchanged.
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { EngineError } from '../errors';
import type { CheckpointHeader } from '../model/checkpoint';
import { parseOnnx, readOnnxFile, type OnnxGraph } from '../onnx/graph';
import { readManifest } from '../runFolder';

export type BackboneRecord = NonNullable<CheckpointHeader['backbone']>;

export const frozenBackboneFileName = 'backbone.onnx';

export function frozenBackbonePath(runDir: string): string {
  return path.join(runDir, frozenBackboneFileName);
}

/** Whether a run folder was trained on an imported backbone, from its manifest (no checkpoint read). */
export async function isFrozenRun(runDir: string): Promise<boolean> {
  try {
    return Boolean((await readManifest(path.resolve(runDir))).options.backbone);
  } catch {
    return false;
  }
}

/** The run's copy of its backbone, or the original when the copy is gone but the original is unchanged. */
export async function readFrozenBackbone(runDir: string, record: BackboneRecord): Promise<{ bytes: Uint8Array; graph: OnnxGraph }> {
  const copy = frozenBackbonePath(runDir);
  if (existsSync(copy)) return readOnnxFile(copy);
  if (existsSync(record.path)) {
    const bytes = await fs.readFile(record.path);
    if (sha256(bytes) === record.sha256) return { bytes, graph: parseOnnx(bytes, record.path) };
  }
  throw new EngineError('BAD_CHECKPOINT', `The run ${runDir} was trained on the ONNX backbone ${record.path}, but its copy ${copy} is missing and the original is gone or changed. Restore ${frozenBackboneFileName}, or train the run again.`);
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
