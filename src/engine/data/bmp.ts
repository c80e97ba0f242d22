// A small reader for uncompressed BMP, because the libvips that ships with sharp has no BMP loader.

export interface RawRgbImage {
  rgb: Buffer;
  widthPx: number;
  heightPx: number;
}

/** Thrown for BMPs we cannot turn into pixels; `reason` is written for the user. */
export class BmpError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'BmpError';
  }
}

const FILE_HEADER_BYTES = 14;
const BI_RGB = 0;
const BI_BITFIELDS = 3;
const COMPRESSION_NAMES: Record<number, string> = { 1: 'RLE8', 2: 'RLE4', 4: 'embedded JPEG', 5: 'embedded PNG', 6: 'alpha bitfields' };

export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

/** Reads the size from the header alone, so a decompression bomb is refused before any allocation. */
export function readBmpSize(bytes: Buffer): { widthPx: number; heightPx: number } {
  if (bytes.length < FILE_HEADER_BYTES + 12) throw new BmpError('truncated or corrupt image: BMP header is cut short');
  const headerBytes = bytes.readUInt32LE(14);
  if (headerBytes === 12) {
    return { widthPx: bytes.readUInt16LE(18), heightPx: bytes.readUInt16LE(20) };
  }
  if (bytes.length < FILE_HEADER_BYTES + 40) throw new BmpError('truncated or corrupt image: BMP header is cut short');
  return { widthPx: bytes.readInt32LE(18), heightPx: Math.abs(bytes.readInt32LE(22)) };
}

/** Decodes BI_RGB 8-bit (palette), 24-bit and 32-bit BMPs, bottom-up or top-down, to packed RGB. */
export function decodeBmp(bytes: Buffer): RawRgbImage {
  if (!isBmp(bytes) || bytes.length < FILE_HEADER_BYTES + 16) {
    throw new BmpError('truncated or corrupt image: BMP header is cut short');
  }
  const pixelOffset = bytes.readUInt32LE(10);
  const headerBytes = bytes.readUInt32LE(14);
  if (headerBytes === 12) throw new BmpError('unsupported BMP variant (OS/2 1.x header); convert it to PNG');
  if (headerBytes < 40 || bytes.length < FILE_HEADER_BYTES + 40) {
    throw new BmpError('truncated or corrupt image: BMP header is cut short');
  }
  const widthPx = bytes.readInt32LE(18);
  const signedHeight = bytes.readInt32LE(22);
  const bitsPerPixel = bytes.readUInt16LE(28);
  const compression = bytes.readUInt32LE(30);
  const paletteEntriesUsed = bytes.readUInt32LE(46);
  const heightPx = Math.abs(signedHeight);
  // A negative height marks rows stored top to bottom; the usual BMP stores them bottom to top.
  const topDown = signedHeight < 0;
  if (widthPx <= 0 || heightPx === 0) throw new BmpError(`truncated or corrupt image: BMP size ${widthPx}×${heightPx} is invalid`);

  if (compression === BI_BITFIELDS) {
    const masksOffset = FILE_HEADER_BYTES + 40;
    const standardMasks =
      bitsPerPixel === 32 &&
      bytes.length >= masksOffset + 12 &&
      bytes.readUInt32LE(masksOffset) === 0x00ff0000 &&
      bytes.readUInt32LE(masksOffset + 4) === 0x0000ff00 &&
      bytes.readUInt32LE(masksOffset + 8) === 0x000000ff;
    // 32-bit BGRX written as BITFIELDS with the standard masks is byte-for-byte the same as BI_RGB.
    if (!standardMasks) throw new BmpError('unsupported BMP variant (bitfields with non-standard masks); convert it to PNG');
  } else if (compression !== BI_RGB) {
    const name = COMPRESSION_NAMES[compression] ?? `compression ${compression}`;
    throw new BmpError(`unsupported BMP variant (${name}); convert it to PNG`);
  }
  if (bitsPerPixel !== 8 && bitsPerPixel !== 24 && bitsPerPixel !== 32) {
    throw new BmpError(`unsupported BMP variant (${bitsPerPixel}-bit); only 8-, 24- and 32-bit BMPs are read, convert it to PNG`);
  }

  // Rows are padded to a multiple of 4 bytes.
  const rowBytes = Math.floor((bitsPerPixel * widthPx + 31) / 32) * 4;
  if (pixelOffset + rowBytes * heightPx > bytes.length) {
    throw new BmpError('truncated or corrupt image: BMP pixel data is shorter than its header says');
  }

  let palette: Uint8Array | undefined;
  if (bitsPerPixel === 8) {
    const paletteEntries = paletteEntriesUsed === 0 ? 256 : Math.min(paletteEntriesUsed, 256);
    const paletteOffset = FILE_HEADER_BYTES + headerBytes;
    if (paletteOffset + paletteEntries * 4 > pixelOffset) {
      throw new BmpError('truncated or corrupt image: BMP palette overlaps the pixel data');
    }
    // Unused palette slots stay black, so stray indices cannot read past the palette.
    palette = new Uint8Array(256 * 3);
    for (let entry = 0; entry < paletteEntries; entry++) {
      const at = paletteOffset + entry * 4;
      palette[entry * 3] = bytes[at + 2];
      palette[entry * 3 + 1] = bytes[at + 1];
      palette[entry * 3 + 2] = bytes[at];
    }
  }

  const rgb = Buffer.alloc(widthPx * heightPx * 3);
  const bytesPerPixel = bitsPerPixel / 8;
  for (let fileRow = 0; fileRow < heightPx; fileRow++) {
    const y = topDown ? fileRow : heightPx - 1 - fileRow;
    const rowStart = pixelOffset + fileRow * rowBytes;
    let out = y * widthPx * 3;
    for (let x = 0; x < widthPx; x++) {
      if (palette) {
        const index = bytes[rowStart + x] * 3;
        rgb[out++] = palette[index];
        rgb[out++] = palette[index + 1];
        rgb[out++] = palette[index + 2];
      } else {
        const at = rowStart + x * bytesPerPixel;
        rgb[out++] = bytes[at + 2];
        rgb[out++] = bytes[at + 1];
        rgb[out++] = bytes[at];
      }
    }
  }
  return { rgb, widthPx, heightPx };
}
