// Image fixtures built in memory at test time: normal, odd and hostile files for the decode tests.

import * as zlib from 'node:zlib';
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import { encodePng, pngChunk, pngHeader } from '../../../src/engine/data/png';

export type Rgb = [number, number, number];

export function solidRgb(widthPx: number, heightPx: number, colour: Rgb): Buffer {
  const pixels = Buffer.alloc(widthPx * heightPx * 3);
  for (let i = 0; i < widthPx * heightPx; i++) pixels.set(colour, i * 3);
  return pixels;
}

/** Deterministic noise, so compressed files are big enough to truncate meaningfully. */
export function noiseRgb(widthPx: number, heightPx: number, seed = 1): Buffer {
  const pixels = Buffer.alloc(widthPx * heightPx * 3);
  let state = seed;
  for (let i = 0; i < pixels.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    pixels[i] = state >>> 24;
  }
  return pixels;
}

export function solidPng(widthPx: number, heightPx: number, colour: Rgb): Buffer {
  return encodePng(solidRgb(widthPx, heightPx, colour), widthPx, heightPx, 3);
}

export function greyPng(widthPx: number, heightPx: number, level: number): Buffer {
  return encodePng(Buffer.alloc(widthPx * heightPx, level), widthPx, heightPx, 1);
}

export function rawToSharp(pixels: Buffer, widthPx: number, heightPx: number, channels: 1 | 2 | 3 | 4): Sharp {
  return sharp(pixels, { raw: { width: widthPx, height: heightPx, channels } });
}

/** A decompression bomb's opening: an IHDR claiming widthPx×heightPx and a few rows of compressed zeros, nothing allocated. */
export function pngBombHeader(widthPx: number, heightPx: number): Buffer {
  const firstRows = zlib.deflateSync(Buffer.alloc(4 * (widthPx * 3 + 1)));
  return Buffer.concat([pngHeader(widthPx, heightPx, 3), pngChunk('IDAT', firstRows), pngChunk('IEND', new Uint8Array(0))]);
}

/** Two frames stacked vertically, written as an animation of frameHeightPx-tall pages. */
export async function animated(format: 'gif' | 'webp', first: Rgb, second: Rgb, sizePx: number): Promise<Buffer> {
  const frames = Buffer.concat([solidRgb(sizePx, sizePx, first), solidRgb(sizePx, sizePx, second)]);
  const image = sharp(frames, { raw: { width: sizePx, height: sizePx * 2, channels: 3, pageHeight: sizePx } });
  return format === 'gif' ? image.gif().toBuffer() : image.webp({ lossless: true }).toBuffer();
}

export interface BmpSpec {
  widthPx: number;
  heightPx: number;
  bitsPerPixel: 8 | 24 | 32;
  topDown?: boolean;
  compression?: number;
  /** Colour of pixel (x, y), y counted from the top. */
  colourAt: (x: number, y: number) => Rgb;
}

/** A BMP writer for the formats bmp.ts reads; 8-bit files get a palette of the colours used. */
export function makeBmp(spec: BmpSpec): Buffer {
  const { widthPx, heightPx, bitsPerPixel } = spec;
  const palette: Rgb[] = [];
  const paletteIndex = new Map<string, number>();
  if (bitsPerPixel === 8) {
    for (let y = 0; y < heightPx; y++) {
      for (let x = 0; x < widthPx; x++) {
        const colour = spec.colourAt(x, y);
        const key = colour.join(',');
        if (!paletteIndex.has(key)) {
          paletteIndex.set(key, palette.length);
          palette.push(colour);
        }
      }
    }
  }
  const rowBytes = Math.floor((bitsPerPixel * widthPx + 31) / 32) * 4;
  const paletteBytes = palette.length * 4;
  const pixelOffset = 14 + 40 + paletteBytes;
  const file = Buffer.alloc(pixelOffset + rowBytes * heightPx);
  file.write('BM', 0, 'latin1');
  file.writeUInt32LE(file.length, 2);
  file.writeUInt32LE(pixelOffset, 10);
  file.writeUInt32LE(40, 14);
  file.writeInt32LE(widthPx, 18);
  file.writeInt32LE(spec.topDown ? -heightPx : heightPx, 22);
  file.writeUInt16LE(1, 26);
  file.writeUInt16LE(bitsPerPixel, 28);
  file.writeUInt32LE(spec.compression ?? 0, 30);
  file.writeUInt32LE(rowBytes * heightPx, 34);
  file.writeUInt32LE(palette.length, 46);
  palette.forEach(([red, green, blue], index) => file.set([blue, green, red, 0], 54 + index * 4));
  for (let y = 0; y < heightPx; y++) {
    const fileRow = spec.topDown ? y : heightPx - 1 - y;
    for (let x = 0; x < widthPx; x++) {
      const colour = spec.colourAt(x, y);
      const at = pixelOffset + fileRow * rowBytes + x * (bitsPerPixel / 8);
      if (bitsPerPixel === 8) file[at] = paletteIndex.get(colour.join(','))!;
      else file.set([colour[2], colour[1], colour[0]], at);
    }
  }
  return file;
}
