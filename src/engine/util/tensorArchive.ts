import { promises as fs } from 'node:fs';
import { writeFileAtomic } from './atomicFile';

/**
 * One file holding a JSON header and named typed arrays: checkpoints and indexes.
 * Layout: "CLNS" | uint32 version | uint32 header bytes | header JSON | padding to 8 | array bytes.
 */
export type ArchiveArray = Float32Array | Int32Array;

export interface ArchiveEntry {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  offset: number;
  length: number;
}

export interface Archive<H> {
  header: H;
  arrays: Map<string, { shape: number[]; values: ArchiveArray }>;
}

const magic = 'CLNS';
const version = 1;

export async function writeArchive<H>(filePath: string, header: H, arrays: Map<string, { shape: number[]; values: ArchiveArray }>): Promise<void> {
  const entries: ArchiveEntry[] = [];
  let offset = 0;
  for (const [name, { shape, values }] of arrays) {
    entries.push({ name, dtype: values instanceof Int32Array ? 'int32' : 'float32', shape, offset, length: values.length });
    offset += values.byteLength;
    offset = Math.ceil(offset / 8) * 8;
  }
  const headerBytes = Buffer.from(JSON.stringify({ header, entries }), 'utf8');
  const dataStart = Math.ceil((12 + headerBytes.length) / 8) * 8;
  const file = Buffer.alloc(dataStart + offset);
  file.write(magic, 0, 'ascii');
  file.writeUInt32LE(version, 4);
  file.writeUInt32LE(headerBytes.length, 8);
  headerBytes.copy(file, 12);
  entries.forEach((entry) => {
    const values = arrays.get(entry.name)!.values;
    Buffer.from(values.buffer, values.byteOffset, values.byteLength).copy(file, dataStart + entry.offset);
  });
  await writeFileAtomic(filePath, file);
}

/** Reads an archive, throwing a plain Error with the reason when the file is not one or is cut short. */
export async function readArchive<H>(filePath: string): Promise<Archive<H>> {
  const file = await fs.readFile(filePath);
  if (file.length < 12 || file.toString('ascii', 0, 4) !== magic) throw new Error('not a Cluster Lens archive (bad magic)');
  if (file.readUInt32LE(4) !== version) throw new Error(`unsupported archive version ${file.readUInt32LE(4)}`);
  const headerLength = file.readUInt32LE(8);
  if (12 + headerLength > file.length) throw new Error('archive is truncated (header)');
  const { header, entries } = JSON.parse(file.toString('utf8', 12, 12 + headerLength)) as { header: H; entries: ArchiveEntry[] };
  const dataStart = Math.ceil((12 + headerLength) / 8) * 8;
  const arrays = new Map<string, { shape: number[]; values: ArchiveArray }>();
  for (const entry of entries) {
    const start = dataStart + entry.offset;
    const byteLength = entry.length * 4;
    if (start + byteLength > file.length) throw new Error(`archive is truncated (array "${entry.name}")`);
    const copy = new ArrayBuffer(byteLength);
    new Uint8Array(copy).set(file.subarray(start, start + byteLength));
    arrays.set(entry.name, { shape: entry.shape, values: entry.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy) });
  }
  return { header, arrays };
}
