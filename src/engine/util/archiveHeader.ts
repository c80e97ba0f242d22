import { promises as fs } from 'node:fs';

/**
 * The JSON header of an archive written by tensorArchive.ts (checkpoints, indexes), without reading its arrays:
 * what a job needs to know about a file it may replace. Throws a plain Error when the file is not an archive.
 */
export async function readArchiveHeader<H>(filePath: string): Promise<H> {
  const handle = await fs.open(filePath, 'r');
  try {
    const { size } = await handle.stat();
    const start = Buffer.alloc(12);
    const { bytesRead } = await handle.read(start, 0, 12, 0);
    if (bytesRead < 12 || start.toString('ascii', 0, 4) !== 'CLNS') throw new Error('not a Cluster Lens archive (bad magic)');
    const headerLength = start.readUInt32LE(8);
    if (12 + headerLength > size) throw new Error('archive is truncated (header)');
    const bytes = Buffer.alloc(headerLength);
    await handle.read(bytes, 0, headerLength, 12);
    return (JSON.parse(bytes.toString('utf8')) as { header: H }).header;
  } finally {
    await handle.close();
  }
}
