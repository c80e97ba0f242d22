// Decodes and resizes images with sharp into one compact uint8 NHWC array; bad files are skipped with a reason.
//
// Decisions:
// - Resize is torchvision's Resize(S) + CenterCrop(S): sharp `fit: 'cover'`, centred, lanczos3.
// - Alpha is flattened onto mid grey (128), so transparent areas look the same in every image whatever RGB they hide.
// - 'auto' channels decode in RGB and collapse to 1 channel when every kept image is grey (all pixels R≈G≈B within
//   2 levels, which also covers grey images with an ICC profile); the check runs on the small resized pixels, so it is cheap.
// - failOn 'error': truncated and corrupt data fail (with 'none' libvips returns garbage), while benign libpng/libjpeg
//   warnings (odd ICC profiles, extra bytes after the end marker) still decode, as they do in browsers.
// - EXIF orientation is applied, so the pixels match what the gallery shows.
// - BMP goes through our own reader (./bmp.ts), since sharp's libvips cannot load BMP.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Metadata, OutputInfo, Sharp } from 'sharp';
import type { ImageRecord, SkippedFile } from '../../protocol/options';
import { EngineError } from '../errors';
import { loadSharp } from '../nativeModules';
import { BmpError, decodeBmp, isBmp, readBmpSize } from './bmp';
import type { ScanResult } from './scan';

export interface ImageSet {
  root: string;
  /** Only the images that decoded, in scan order; index i owns pixels [i*S*S*C, (i+1)*S*S*C). */
  records: ImageRecord[];
  labelNames: string[];
  imageSizePx: number;
  channels: 1 | 3;
  /** N*S*S*C bytes, NHWC. */
  pixels: Uint8Array;
  /** The scan's skipped files followed by decode failures. */
  skipped: SkippedFile[];
}

export interface LoadImageSetOptions {
  imageSizePx: number;
  channels: 1 | 3 | 'auto';
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Images decoded at once; sharp runs each on the libuv pool. */
  concurrency?: number;
}

export const MAX_INPUT_PIXELS = 100_000_000;
export const MAX_FILE_BYTES = 256 * 1024 * 1024;
export const ALPHA_BACKGROUND = { r: 128, g: 128, b: 128 };
const DEFAULT_CONCURRENCY = 4;
// Largest per-pixel channel spread still counted as grey for 'auto' channels.
const GREY_TOLERANCE = 2;

/** A file we could not decode; `reason` is written for the user. */
class DecodeProblem extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

type SniffedFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'tiff' | 'bmp';

// Only these magic numbers reach libvips, so SVG, PDF or HEIF content behind an image name never gets parsed.
function sniffFormat(bytes: Buffer): SniffedFormat | undefined {
  const startsWith = (...values: number[]): boolean => values.every((value, index) => bytes[index] === value);
  if (startsWith(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png';
  if (startsWith(0xff, 0xd8, 0xff)) return 'jpeg';
  if (bytes.length >= 6 && (bytes.toString('latin1', 0, 6) === 'GIF87a' || bytes.toString('latin1', 0, 6) === 'GIF89a')) return 'gif';
  if (bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  if (startsWith(0x49, 0x49, 0x2a, 0x00) || startsWith(0x4d, 0x4d, 0x00, 0x2a)) return 'tiff';
  if (isBmp(bytes)) return 'bmp';
  return undefined;
}

function describeContent(bytes: Buffer): string {
  const head = bytes.subarray(0, 512);
  const looksLikeText = head.every((byte) => byte === 0x09 || byte === 0x0a || byte === 0x0d || (byte >= 0x20 && byte !== 0x7f));
  if (looksLikeText) return 'not an image (the file holds text)';
  return 'not an image (the content is not PNG, JPEG, WebP, GIF, TIFF or BMP)';
}

function bombMessage(widthPx?: number, heightPx?: number): string {
  const size = widthPx === undefined ? 'image is' : `image is ${widthPx}×${heightPx},`;
  return `${size} larger than the ${MAX_INPUT_PIXELS / 1_000_000}-megapixel limit (decompression bomb?)`;
}

function checkPixelLimit(widthPx: number, heightPx: number): void {
  if (widthPx * heightPx > MAX_INPUT_PIXELS) throw new DecodeProblem(bombMessage(widthPx, heightPx));
}

function firstLine(error: unknown): string {
  const message = (error instanceof Error ? error.message : String(error)).split('\n')[0].trim();
  // libvips keeps one error buffer per process, so a concurrent decode can lose its message.
  return message === '' || message === 'Unknown error' ? 'the decoder stopped without saying why' : message;
}

async function readImageFile(filePath: string): Promise<Buffer> {
  let sizeBytes: number;
  try {
    const stats = await fs.stat(filePath);
    if (!stats.isFile()) throw new DecodeProblem('not a regular file');
    sizeBytes = stats.size;
  } catch (error) {
    if (error instanceof DecodeProblem) throw error;
    throw new DecodeProblem(describeReadError(error));
  }
  if (sizeBytes === 0) throw new DecodeProblem('empty file');
  if (sizeBytes > MAX_FILE_BYTES) {
    throw new DecodeProblem(`file is ${Math.round(sizeBytes / 1024 / 1024)} MB, larger than the ${MAX_FILE_BYTES / 1024 / 1024} MB limit`);
  }
  try {
    return await fs.readFile(filePath);
  } catch (error) {
    throw new DecodeProblem(describeReadError(error));
  }
}

function describeReadError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file not found (it may have been moved or deleted)';
  if (code === 'EACCES' || code === 'EPERM') return `cannot read file: permission denied (${code})`;
  return `cannot read file: ${firstLine(error)}`;
}

async function openWithSharp(bytes: Buffer): Promise<Sharp> {
  const sharp = loadSharp();
  const limits = { failOn: 'error' as const, limitInputPixels: MAX_INPUT_PIXELS };
  const format = sniffFormat(bytes);
  if (format === undefined) throw new DecodeProblem(bytes.length === 0 ? 'empty file' : describeContent(bytes));
  if (format === 'bmp') {
    try {
      const size = readBmpSize(bytes);
      checkPixelLimit(size.widthPx, size.heightPx);
      const image = decodeBmp(bytes);
      return sharp(image.rgb, { ...limits, raw: { width: image.widthPx, height: image.heightPx, channels: 3 } });
    } catch (error) {
      if (error instanceof BmpError) throw new DecodeProblem(error.reason);
      throw error;
    }
  }
  if (format === 'png' && bytes.length >= 24 && bytes.toString('latin1', 12, 16) === 'IHDR') {
    // libspng wants to see pixel data before it reports a size, so read IHDR ourselves to refuse bombs early.
    checkPixelLimit(bytes.readUInt32BE(16), bytes.readUInt32BE(20));
  }
  let metadata: Metadata;
  try {
    // Header only: refuse bombs by their declared size before a single pixel is decoded.
    metadata = await sharp(bytes, limits).metadata();
  } catch (error) {
    if (!/pixel limit/i.test(firstLine(error))) throw new DecodeProblem(`truncated or corrupt image: ${firstLine(error)}`);
    // Ask again without the limit, only to name the size in the message; still no pixels are decoded.
    const size = await sharp(bytes, { limitInputPixels: false }).metadata().catch(() => undefined);
    if (size?.width && size.height) checkPixelLimit(size.width, size.height);
    throw new DecodeProblem(bombMessage());
  }
  checkPixelLimit(metadata.width ?? 0, metadata.height ?? 0);
  // Animated GIF/WebP: sharp reads only the first frame unless asked for more.
  return sharp(bytes, { ...limits, autoOrient: true });
}

/** Decodes one file to S*S*C uint8 pixels; throws DecodeProblem with a user-facing reason. */
async function decodeFile(filePath: string, imageSizePx: number, channels: 1 | 3): Promise<Uint8Array> {
  const bytes = await readImageFile(filePath);
  const image = await openWithSharp(bytes);
  let output: { data: Buffer; info: OutputInfo };
  try {
    let pipeline = image
      .flatten({ background: ALPHA_BACKGROUND })
      .resize(imageSizePx, imageSizePx, { fit: 'cover', position: 'centre' });
    pipeline = channels === 1 ? pipeline.greyscale() : pipeline.toColourspace('srgb');
    output = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (error) {
    const message = firstLine(error);
    if (/pixel limit/i.test(message)) throw new DecodeProblem(bombMessage());
    throw new DecodeProblem(`truncated or corrupt image: ${message}`);
  }
  const expectedBytes = imageSizePx * imageSizePx * channels;
  if (output.info.channels !== channels || output.data.length !== expectedBytes) {
    throw new DecodeProblem(`unexpected decoder output (${output.info.channels} channels, ${output.data.length} bytes)`);
  }
  return new Uint8Array(output.data.buffer, output.data.byteOffset, output.data.length);
}

/** Decodes one image for queries such as "neighbours of this image". */
export async function decodeImage(filePath: string, imageSizePx: number, channels: 1 | 3): Promise<Uint8Array> {
  try {
    return await decodeFile(filePath, imageSizePx, channels);
  } catch (error) {
    if (error instanceof DecodeProblem) {
      throw new EngineError('DECODE_FAILED', `Could not decode "${filePath}": ${error.reason}. Choose another image or re-save it as PNG.`);
    }
    throw error;
  }
}

function isGreyRgb(pixels: Uint8Array): boolean {
  for (let i = 0; i < pixels.length; i += 3) {
    const red = pixels[i];
    const green = pixels[i + 1];
    const blue = pixels[i + 2];
    if (Math.abs(red - green) > GREY_TOLERANCE || Math.abs(green - blue) > GREY_TOLERANCE || Math.abs(red - blue) > GREY_TOLERANCE) {
      return false;
    }
  }
  return true;
}

function collapseToGrey(rgb: Uint8Array): Uint8Array {
  const grey = new Uint8Array(rgb.length / 3);
  for (let i = 0; i < grey.length; i++) grey[i] = Math.round((rgb[i * 3] + rgb[i * 3 + 1] + rgb[i * 3 + 2]) / 3);
  return grey;
}

function cancelled(): EngineError {
  return new EngineError('CANCELLED', 'Loading the images was cancelled.');
}

export async function loadImageSet(scan: ScanResult, options: LoadImageSetOptions): Promise<ImageSet> {
  const { imageSizePx, signal, onProgress } = options;
  if (!Number.isInteger(imageSizePx) || imageSizePx < 1) {
    throw new EngineError('BAD_CONFIG', `Image size must be a positive whole number of pixels, not ${imageSizePx}.`);
  }
  if (signal?.aborted) throw cancelled();
  const decodeChannels: 1 | 3 = options.channels === 1 ? 1 : 3;
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY));
  const total = scan.files.length;
  const stride = imageSizePx * imageSizePx * decodeChannels;
  let pixels: Uint8Array;
  try {
    pixels = new Uint8Array(total * stride);
  } catch {
    const gigabytes = ((total * stride) / 1024 ** 3).toFixed(1);
    throw new EngineError(
      'BAD_CONFIG',
      `${total} images at ${imageSizePx}×${imageSizePx}×${decodeChannels} need ${gigabytes} GB of memory, more than can be allocated. Use a smaller image size or fewer images.`,
    );
  }
  const decoded = new Array<boolean>(total).fill(false);
  const grey = new Array<boolean>(total).fill(false);
  const failures = new Array<SkippedFile | undefined>(total);
  let nextIndex = 0;
  let done = 0;

  async function worker(): Promise<void> {
    while (nextIndex < total && !signal?.aborted) {
      const index = nextIndex++;
      const record = scan.files[index];
      try {
        const image = await decodeFile(path.join(scan.root, record.path), imageSizePx, decodeChannels);
        pixels.set(image, index * stride);
        decoded[index] = true;
        grey[index] = decodeChannels === 3 && options.channels === 'auto' && isGreyRgb(image);
      } catch (error) {
        if (!(error instanceof DecodeProblem)) throw error;
        failures[index] = { path: record.path, reason: error.reason };
      }
      done++;
      onProgress?.(done, total);
    }
  }

  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(total, 1)) }, () => worker()));
  if (signal?.aborted) throw cancelled();

  const keptIndices: number[] = [];
  for (let index = 0; index < total; index++) if (decoded[index]) keptIndices.push(index);
  const records = keptIndices.map((index) => scan.files[index]);
  const skipped = [...scan.skipped, ...failures.filter((item): item is SkippedFile => item !== undefined)];
  if (records.length === 0) {
    throw new EngineError(
      'NO_IMAGES',
      `None of the ${total} image files in "${scan.root}" could be decoded (for example "${skipped[skipped.length - 1]?.path}": ${skipped[skipped.length - 1]?.reason}).`,
    );
  }

  // Move kept images down over the failed ones, then copy once so the set holds exactly N images.
  for (let slot = 0; slot < keptIndices.length; slot++) {
    const from = keptIndices[slot];
    if (from !== slot) pixels.copyWithin(slot * stride, from * stride, (from + 1) * stride);
  }
  let kept: Uint8Array = keptIndices.length === total ? pixels : pixels.slice(0, keptIndices.length * stride);
  let channels: 1 | 3 = decodeChannels;
  if (options.channels === 'auto' && keptIndices.every((index) => grey[index])) {
    kept = collapseToGrey(kept);
    channels = 1;
  }
  return { root: scan.root, records, labelNames: scan.labelNames, imageSizePx, channels, pixels: kept, skipped };
}
