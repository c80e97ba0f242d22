import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * Has `write` fill a temp file beside `filePath`, then fsyncs it and renames it into place, so a crash leaves
 * either the old file or the new one, never half; the temp file never outlives a failure. For writers that take a
 * path (a native library's save) as well as bytes in memory.
 */
export async function replaceFileAtomic(filePath: string, write: (temporary: string) => Promise<void> | void): Promise<void> {
  await fs.mkdir(path.dirname(filePath), { recursive: true });
  const temporary = `${filePath}.tmp-${process.pid}-${Date.now()}`;
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
