// The ONNX file a frozen-backbone run was trained on: its copy in the run folder, or the original if unchanged.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { EngineError } from '../errors';
import type { CheckpointHeader } from '../model/checkpoint';
import { parseOnnx, readModelBytes, type OnnxGraph } from '../onnx/graph';
import { OnnxModelError } from '../onnx/onnxError';
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

/**
 * The run's copy of its backbone, or the original when the copy is gone but the original is unchanged. Either is
 * used only when its SHA-256 is the one the checkpoint records: a copy that was swapped or damaged since training
 * is refused, naming it. The copy must be a plain file in the run folder (a link is refused, not followed).
 */
export async function readFrozenBackbone(runDir: string, record: BackboneRecord): Promise<{ bytes: Uint8Array; graph: OnnxGraph }> {
  const copy = path.resolve(frozenBackbonePath(runDir));
  if (await present(copy)) {
    const bytes = await readModelBytes(copy, { noFollow: true });
    const actual = sha256(bytes);
    if (actual !== record.sha256) {
      throw new OnnxModelError(
        'refused',
        copy,
        `The run's copy of its ONNX backbone, ${copy}, is not the file the run was trained on: its SHA-256 is ${actual}, but the checkpoint records ${String(record.sha256)}. Restore ${frozenBackboneFileName} (copy the original ${record.path} back, if it is unchanged), or train the run again.`,
      );
    }
    return { bytes, graph: parseOnnx(bytes, copy) };
  }
  let original: Uint8Array | undefined;
  try {
    original = await readModelBytes(record.path);
  } catch (error) {
    // Gone: say so below. Anything else (a FIFO, a folder, too large) names the file itself.
    if (!(error instanceof OnnxModelError && error.problem === 'unreadable')) throw error;
  }
  if (original && sha256(original) === record.sha256) return { bytes: original, graph: parseOnnx(original, path.resolve(record.path)) };
  throw new EngineError('BAD_CHECKPOINT', `The run ${runDir} was trained on the ONNX backbone ${record.path}, but its copy ${copy} is missing and the original is gone or changed. Restore ${frozenBackboneFileName}, or train the run again.`);
}

/** Whether something is at `file`, a dangling link included (lstat, not followed). */
async function present(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new EngineError('BAD_CHECKPOINT', `Cannot read the run's copy of its ONNX backbone, ${file}: ${(error as Error).message}. Restore ${frozenBackboneFileName}, or train the run again.`, String(error));
  }
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
