import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { EngineError, isDiskFull } from '../errors';

/** The temporary file beside `filePath` that an atomic save writes first: `<name>.tmp-<pid>-<ms>`. */
function temporaryPathFor(filePath: string): string {
  return `${filePath}.tmp-${process.pid}-${Date.now()}`;
}

/** A leftover temporary file's writer (its pid) and when it started (ms since the epoch), from its name. */
export function temporaryFileOwner(name: string): { pid: number; startedAt: number } | undefined {
  const match = /\.tmp-(\d+)-(\d+)$/.exec(name);
  return match ? { pid: Number(match[1]), startedAt: Number(match[2]) } : undefined;
}

/**
 * Has `write` fill a temp file beside `filePath`, then fsyncs it and renames it into place, so a crash leaves
 * either the old file or the new one, never half; the temp file never outlives a failure (a killed process leaves
 * it behind: the run lock cleans those up). A full disk (ENOSPC, EDQUOT) is a DISK_FULL error naming the file. For
 * writers that take a path (a native library's save) as well as bytes in memory.
 */
export async function replaceFileAtomic(filePath: string, write: (temporary: string) => Promise<void> | void): Promise<void> {
  await fs.mkdir(path.dirname(filePath), { recursive: true });
  const temporary = temporaryPathFor(filePath);
  try {
    await write(temporary);
    const handle = await fs.open(temporary, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, filePath);
  } catch (error) {
    await fs.rm(temporary, { force: true });
    if (isDiskFull(error)) {
      throw new EngineError(
        'DISK_FULL',
        `The disk is full: ${filePath} could not be written (no space left in ${path.dirname(filePath)}). The previous ${path.basename(filePath)}, if any, is unchanged. Free some space and try again.`,
        String(error),
      );
    }
    throw error;
  }
}

/** Writes `data` to `filePath` through `replaceFileAtomic`. */
export async function writeFileAtomic(filePath: string, data: Uint8Array | string): Promise<void> {
  await replaceFileAtomic(filePath, (temporary) => fs.writeFile(temporary, data));
}

/** The SHA-256 of a file's bytes, hex, read as a stream. */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
