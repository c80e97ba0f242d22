// Reads Fashion-MNIST idx files (Debian's dataset-fashion-mnist) and writes them out as labelled PNG folders.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { EngineError } from '../errors';
import { encodePng } from './png';

export type FashionMnistSplit = 'train' | 'test';

export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Folder names in label order; the digit prefix keeps sorted order equal to label order. */
export const FASHION_MNIST_CLASS_NAMES = [
  '0-tshirt-top',
  '1-trouser',
  '2-pullover',
  '3-dress',
  '4-coat',
  '5-sandal',
  '6-shirt',
  '7-sneaker',
  '8-bag',
  '9-ankle-boot',
] as const;

const IDX_IMAGES_MAGIC = 0x00000803;
const IDX_LABELS_MAGIC = 0x00000801;
const FILE_PREFIX: Record<FashionMnistSplit, string> = { train: 'train', test: 't10k' };
// Encoding is synchronous and tiny; the concurrency overlaps the file writes.
const DEFAULT_CONCURRENCY = 16;
const gunzip = promisify(zlib.gunzip);

export interface IdxImages {
  count: number;
  rowsPx: number;
  columnsPx: number;
  /** count*rows*columns bytes, row-major, 0 = background. */
  pixels: Uint8Array;
}

export interface FashionMnistSplitData extends IdxImages {
  labels: Uint8Array;
}

export interface WriteFashionMnistOptions {
  idxDir: string;
  outDir: string;
  splits?: FashionMnistSplit[];
  /** Keep only the first N images of each class, in file order. */
  perClassLimit?: number;
  onProgress?: (done: number, total: number) => void;
  /** false writes `<outDir>/<class>/…` without the split folder; needs exactly one split. Default true. */
  splitFolders?: boolean;
  signal?: AbortSignal;
  concurrency?: number;
}

export interface WriteFashionMnistResult {
  outDir: string;
  written: number;
  /** Images written per split and class, in label order. */
  perClass: Partial<Record<FashionMnistSplit, number[]>>;
}

function idxFormatError(file: string, problem: string): EngineError {
  return new EngineError('DECODE_FAILED', `"${file}" is not a valid Fashion-MNIST idx file: ${problem}. Reinstall dataset-fashion-mnist or download the files again.`);
}

export function parseIdxImages(bytes: Uint8Array, file = 'images file'): IdxImages {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 16) throw idxFormatError(file, 'the header is cut short');
  const magic = view.getUint32(0);
  if (magic !== IDX_IMAGES_MAGIC) {
    throw idxFormatError(file, `magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000803 (unsigned bytes, 3 dimensions)`);
  }
  const count = view.getUint32(4);
  const rowsPx = view.getUint32(8);
  const columnsPx = view.getUint32(12);
  const expectedBytes = 16 + count * rowsPx * columnsPx;
  if (bytes.length !== expectedBytes) throw idxFormatError(file, `${bytes.length} bytes where the header promises ${expectedBytes}`);
  return { count, rowsPx, columnsPx, pixels: bytes.subarray(16) };
}

export function parseIdxLabels(bytes: Uint8Array, file = 'labels file'): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8) throw idxFormatError(file, 'the header is cut short');
  const magic = view.getUint32(0);
  if (magic !== IDX_LABELS_MAGIC) {
    throw idxFormatError(file, `magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000801 (unsigned bytes, 1 dimension)`);
  }
  const count = view.getUint32(4);
  if (bytes.length !== 8 + count) throw idxFormatError(file, `${bytes.length} bytes where the header promises ${8 + count}`);
  const labels = bytes.subarray(8);
  const badLabel = labels.find((label) => label >= FASHION_MNIST_CLASS_NAMES.length);
  if (badLabel !== undefined) throw idxFormatError(file, `label ${badLabel} is outside 0..9`);
  return labels;
}

/** Finds `<name>.gz`, or the uncompressed `<name>`, in idxDir. */
async function readIdxFile(idxDir: string, name: string): Promise<{ bytes: Uint8Array; file: string }> {
  for (const file of [path.join(idxDir, `${name}.gz`), path.join(idxDir, name)]) {
    let raw: Buffer;
    try {
      raw = await fs.readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new EngineError('NOT_FOUND', `Cannot read "${file}": ${(error as Error).message}.`);
    }
    if (!file.endsWith('.gz')) return { bytes: raw, file };
    try {
      return { bytes: await gunzip(raw), file };
    } catch (error) {
      throw idxFormatError(file, `it does not decompress (${(error as Error).message})`);
    }
  }
  throw new EngineError(
    'NOT_FOUND',
    `Fashion-MNIST file "${name}.gz" was not found in "${idxDir}". Install it with "apt-get install dataset-fashion-mnist" (files go to ${DEFAULT_FASHION_MNIST_DIR}) or pass the folder that holds the idx files.`,
  );
}

export async function readFashionMnistSplit(idxDir: string, split: FashionMnistSplit): Promise<FashionMnistSplitData> {
  const prefix = FILE_PREFIX[split];
  const imagesFile = await readIdxFile(idxDir, `${prefix}-images-idx3-ubyte`);
  const labelsFile = await readIdxFile(idxDir, `${prefix}-labels-idx1-ubyte`);
  const images = parseIdxImages(imagesFile.bytes, imagesFile.file);
  const labels = parseIdxLabels(labelsFile.bytes, labelsFile.file);
  if (labels.length !== images.count) {
    throw idxFormatError(labelsFile.file, `${labels.length} labels for ${images.count} images`);
  }
  return { ...images, labels };
}

interface PngJob {
  file: string;
  pixels: Uint8Array;
  widthPx: number;
  heightPx: number;
}

export async function writeFashionMnistPngs(options: WriteFashionMnistOptions): Promise<WriteFashionMnistResult> {
  const splits = options.splits ?? ['train', 'test'];
  const splitFolders = options.splitFolders ?? true;
  if (!splitFolders && splits.length !== 1) {
    throw new EngineError('BAD_REQUEST', 'Writing without split folders needs exactly one split, or the splits would overwrite each other.');
  }
  const perClassLimit = options.perClassLimit ?? Number.POSITIVE_INFINITY;
  const jobs: PngJob[] = [];
  const perClass: Partial<Record<FashionMnistSplit, number[]>> = {};

  for (const split of splits) {
    const data = await readFashionMnistSplit(options.idxDir, split);
    const stride = data.rowsPx * data.columnsPx;
    const counts = new Array<number>(FASHION_MNIST_CLASS_NAMES.length).fill(0);
    const splitDir = splitFolders ? path.join(options.outDir, split) : options.outDir;
    for (let index = 0; index < data.count; index++) {
      const label = data.labels[index];
      if (counts[label] >= perClassLimit) continue;
      counts[label]++;
      // The file name is the index in the split's idx file, so every PNG traces back to its source record.
      const file = path.join(splitDir, FASHION_MNIST_CLASS_NAMES[label], `${String(index).padStart(5, '0')}.png`);
      jobs.push({ file, pixels: data.pixels.subarray(index * stride, (index + 1) * stride), widthPx: data.columnsPx, heightPx: data.rowsPx });
    }
    perClass[split] = counts;
    for (const className of FASHION_MNIST_CLASS_NAMES) await fs.mkdir(path.join(splitDir, className), { recursive: true });
  }

  let nextJob = 0;
  let done = 0;
  async function worker(): Promise<void> {
    while (nextJob < jobs.length && !options.signal?.aborted) {
      const job = jobs[nextJob++];
      await fs.writeFile(job.file, encodePng(job.pixels, job.widthPx, job.heightPx, 1));
      done++;
      options.onProgress?.(done, jobs.length);
    }
  }
  const concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(jobs.length, 1)) }, () => worker()));
  if (options.signal?.aborted) throw new EngineError('CANCELLED', 'Writing the Fashion-MNIST PNGs was cancelled.');
  return { outDir: options.outDir, written: done, perClass };
}
