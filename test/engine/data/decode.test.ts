import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ALPHA_BACKGROUND, decodeImage, loadImageSet } from '../../../src/engine/data/decode';
import { scanImageFolder } from '../../../src/engine/data/scan';
import { EngineError } from '../../../src/engine/errors';
import { animated, greyPng, makeBmp, noiseRgb, pngBombHeader, rawToSharp, solidPng, solidRgb, type Rgb } from './fixtures';

const RED: Rgb = [220, 20, 40];
const BLUE: Rgb = [10, 30, 230];
const HOSTILE_NAME = '<img src=x onerror=alert(1)>.png';
const SIZE_PX = 8;

let tempRoot: string;
let oddRoot: string;

before(async () => {
  tempRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'cluster-lens-decode-'));
  oddRoot = path.join(tempRoot, 'odd');
  await fs.mkdir(oddRoot);
  const noisy = noiseRgb(96, 96);
  const noisyPng = await rawToSharp(noisy, 96, 96, 3).png().toBuffer();
  const noisyJpeg = await rawToSharp(noisy, 96, 96, 3).jpeg({ quality: 90 }).toBuffer();
  const transparent = Buffer.alloc(16 * 16 * 4);
  for (let i = 0; i < 16 * 16; i++) transparent.set([255, 0, 0, 0], i * 4);
  const checker = (x: number, y: number): Rgb => ((x + y) % 2 === 0 ? RED : BLUE);
  const files: Record<string, Buffer> = {
    'solid.png': solidPng(24, 12, RED),
    'grey.png': greyPng(10, 10, 77),
    'empty.png': Buffer.alloc(0),
    'truncated.png': noisyPng.subarray(0, Math.floor(noisyPng.length * 0.6)),
    'truncated.jpg': noisyJpeg.subarray(0, Math.floor(noisyJpeg.length * 0.6)),
    'text.jpg': Buffer.from('This is a note, not a photograph.\n'),
    'drawing.png': Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'),
    'cmyk.jpg': await rawToSharp(solidRgb(16, 16, RED), 16, 16, 3).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer(),
    'deep.png': await rawToSharp(solidRgb(16, 16, BLUE), 16, 16, 3).toColourspace('rgb16').png().toBuffer(),
    'transparent.png': await rawToSharp(transparent, 16, 16, 4).png().toBuffer(),
    'animated.gif': await animated('gif', RED, BLUE, 16),
    'animated.webp': await animated('webp', BLUE, RED, 16),
    'photo.webp': await rawToSharp(solidRgb(16, 16, BLUE), 16, 16, 3).webp({ lossless: true }).toBuffer(),
    'scan.tiff': await rawToSharp(solidRgb(16, 16, RED), 16, 16, 3).tiff().toBuffer(),
    'bomb.png': pngBombHeader(30000, 30000),
    // Top half red, bottom half blue; 10 px rows of 24-bit pixels need row padding.
    'bottom-up.bmp': makeBmp({ widthPx: 10, heightPx: 16, bitsPerPixel: 24, colourAt: (x, y) => (y < 8 ? RED : BLUE) }),
    'top-down.bmp': makeBmp({ widthPx: 16, heightPx: 10, bitsPerPixel: 32, topDown: true, colourAt: (x, y) => (y < 5 ? RED : BLUE) }),
    'palette.bmp': makeBmp({ widthPx: 7, heightPx: 7, bitsPerPixel: 8, colourAt: checker }),
    'rle.bmp': makeBmp({ widthPx: 4, heightPx: 4, bitsPerPixel: 8, compression: 1, colourAt: () => RED }),
    'with space.png': solidPng(9, 9, BLUE),
    'ünïcödé 画像.png': solidPng(9, 9, RED),
    [HOSTILE_NAME]: solidPng(9, 9, RED),
  };
  for (const [name, bytes] of Object.entries(files)) await fs.writeFile(path.join(oddRoot, name), bytes);
});

after(async () => {
  await fs.rm(tempRoot, { recursive: true, force: true });
});

function pixelAt(pixels: Uint8Array, imageIndex: number, x: number, y: number, channels: number): number[] {
  const start = ((imageIndex * SIZE_PX + y) * SIZE_PX + x) * channels;
  return Array.from(pixels.subarray(start, start + channels));
}

function assertColourNear(actual: number[], expected: number[], tolerance: number, label: string): void {
  assert.equal(actual.length, expected.length, label);
  actual.forEach((value, channel) =>
    assert.ok(Math.abs(value - expected[channel]) <= tolerance, `${label}: got [${actual}], expected [${expected}] ±${tolerance}`),
  );
}

async function makeFolder(name: string, files: Record<string, Buffer>): Promise<string> {
  const root = path.join(tempRoot, name);
  await fs.mkdir(root, { recursive: true });
  for (const [file, bytes] of Object.entries(files)) await fs.writeFile(path.join(root, file), bytes);
  return root;
}

describe('loadImageSet on odd and hostile files', () => {
  test('keeps what decodes, skips the rest with the right reason', async () => {
    const scan = await scanImageFolder(oddRoot);
    const progress: Array<[number, number]> = [];
    const set = await loadImageSet(scan, { imageSizePx: SIZE_PX, channels: 3, onProgress: (done, total) => progress.push([done, total]) });

    assert.deepEqual(set.records.map((record) => record.path).sort(), [
      HOSTILE_NAME,
      'animated.gif',
      'animated.webp',
      'bottom-up.bmp',
      'cmyk.jpg',
      'deep.png',
      'grey.png',
      'palette.bmp',
      'photo.webp',
      'scan.tiff',
      'solid.png',
      'top-down.bmp',
      'transparent.png',
      'with space.png',
      'ünïcödé 画像.png',
    ]);
    const reasons = Object.fromEntries(set.skipped.map((item) => [item.path, item.reason]));
    assert.deepEqual(Object.keys(reasons).sort(), ['bomb.png', 'drawing.png', 'empty.png', 'rle.bmp', 'text.jpg', 'truncated.jpg', 'truncated.png']);
    assert.equal(reasons['empty.png'], 'empty file');
    assert.match(reasons['truncated.png'], /^truncated or corrupt image: /);
    // libvips may lose the detail ("premature end of JPEG image") to a concurrent decode; the cause is what counts.
    assert.match(reasons['truncated.jpg'], /^truncated or corrupt image: /);
    assert.match(reasons['text.jpg'], /^not an image \(the file holds text\)/);
    assert.match(reasons['drawing.png'], /^not an image/);
    assert.equal(reasons['bomb.png'], 'image is 30000×30000, larger than the 100-megapixel limit (decompression bomb?)');
    assert.match(reasons['rle.bmp'], /unsupported BMP variant \(RLE8\)/);

    assert.equal(set.channels, 3);
    assert.equal(set.imageSizePx, SIZE_PX);
    assert.equal(set.pixels.length, set.records.length * SIZE_PX * SIZE_PX * 3);
    assert.deepEqual(set.labelNames, []);
    assert.equal(progress.length, scan.files.length);
    assert.deepEqual(progress[progress.length - 1], [scan.files.length, scan.files.length]);
    assert.deepEqual(progress.map(([done]) => done), progress.map((_, index) => index + 1));

    const indexOf = (name: string): number => set.records.findIndex((record) => record.path === name);
    const colourOf = (name: string, x = 3, y = 3): number[] => pixelAt(set.pixels, indexOf(name), x, y, 3);
    assertColourNear(colourOf('solid.png', 0, 0), RED, 1, 'solid corner');
    assertColourNear(colourOf('solid.png', 7, 7), RED, 1, 'solid far corner');
    assertColourNear(colourOf('grey.png'), [77, 77, 77], 1, 'greyscale PNG');
    // CMYK without a profile does not round-trip exactly; it must still come back clearly red.
    const cmyk = colourOf('cmyk.jpg');
    assert.ok(cmyk[0] > 180 && cmyk[1] < 60 && cmyk[2] < 60, `CMYK JPEG should decode red, got [${cmyk}]`);
    assertColourNear(colourOf('deep.png'), BLUE, 1, '16-bit PNG');
    assertColourNear(colourOf('transparent.png'), [ALPHA_BACKGROUND.r, ALPHA_BACKGROUND.g, ALPHA_BACKGROUND.b], 1, 'alpha flattened');
    assertColourNear(colourOf('animated.gif'), RED, 3, 'first GIF frame');
    assertColourNear(colourOf('animated.webp'), BLUE, 1, 'first WebP frame');
    assertColourNear(colourOf('photo.webp'), BLUE, 1, 'WebP');
    assertColourNear(colourOf('scan.tiff'), RED, 1, 'TIFF');
    assertColourNear(colourOf(HOSTILE_NAME), RED, 1, 'hostile name');
    assertColourNear(colourOf('ünïcödé 画像.png'), RED, 1, 'unicode name');
    assertColourNear(colourOf('with space.png'), BLUE, 1, 'name with space');
    // Each BMP is red on top and blue below; a reader that got the row order wrong would swap them.
    assertColourNear(colourOf('bottom-up.bmp', 4, 0), RED, 6, 'bottom-up BMP top row');
    assertColourNear(colourOf('bottom-up.bmp', 4, 7), BLUE, 6, 'bottom-up BMP bottom row');
    assertColourNear(colourOf('top-down.bmp', 4, 0), RED, 6, 'top-down BMP top row');
    assertColourNear(colourOf('top-down.bmp', 4, 7), BLUE, 6, 'top-down BMP bottom row');
    const paletteCorner = colourOf('palette.bmp', 0, 0);
    assert.ok(paletteCorner[0] > paletteCorner[2], `palette BMP corner should be reddish, got [${paletteCorner}]`);
  });

  test('concurrency changes nothing in the result', async () => {
    const scan = await scanImageFolder(oddRoot);
    const serial = await loadImageSet(scan, { imageSizePx: SIZE_PX, channels: 3, concurrency: 1 });
    const parallel = await loadImageSet(scan, { imageSizePx: SIZE_PX, channels: 3, concurrency: 8 });
    assert.deepEqual(parallel.records, serial.records);
    // Reasons are compared by cause: libvips shares one error buffer, so concurrent decodes may word them differently.
    const cause = (reason: string): string => reason.split(':')[0];
    assert.deepEqual(
      parallel.skipped.map((item) => [item.path, cause(item.reason)]),
      serial.skipped.map((item) => [item.path, cause(item.reason)]),
    );
    assert.ok(Buffer.from(parallel.pixels).equals(Buffer.from(serial.pixels)));
  });

  test("scan's skipped files come first in skipped", async () => {
    const root = await makeFolder('with-scan-skips', { 'a.png': solidPng(4, 4, RED), 'b.heic': Buffer.from('x'), 'c.png': Buffer.alloc(0) });
    const set = await loadImageSet(await scanImageFolder(root), { imageSizePx: SIZE_PX, channels: 3 });
    assert.deepEqual(set.skipped.map((item) => item.path), ['b.heic', 'c.png']);
  });
});

describe('channels', () => {
  test("'auto' gives 1 channel when every image is grey, even stored as RGB", async () => {
    const root = await makeFolder('all-grey', {
      'one.png': greyPng(12, 12, 30),
      'two.png': solidPng(12, 12, [200, 200, 200]),
      'three.jpg': await rawToSharp(solidRgb(12, 12, [90, 90, 90]), 12, 12, 3).jpeg().toBuffer(),
    });
    const set = await loadImageSet(await scanImageFolder(root), { imageSizePx: SIZE_PX, channels: 'auto' });
    assert.equal(set.channels, 1);
    assert.equal(set.pixels.length, 3 * SIZE_PX * SIZE_PX);
    const levels = set.records.map((record, index) => pixelAt(set.pixels, index, 2, 2, 1)[0]);
    const byName = Object.fromEntries(set.records.map((record, index) => [record.path, levels[index]]));
    assert.ok(Math.abs(byName['one.png'] - 30) <= 1, `one.png ${byName['one.png']}`);
    assert.ok(Math.abs(byName['two.png'] - 200) <= 1, `two.png ${byName['two.png']}`);
    assert.ok(Math.abs(byName['three.jpg'] - 90) <= 2, `three.jpg ${byName['three.jpg']}`);
  });

  test("'auto' gives 3 channels when any image has colour", async () => {
    const root = await makeFolder('mixed', { 'grey.png': greyPng(12, 12, 30), 'red.png': solidPng(12, 12, RED) });
    const set = await loadImageSet(await scanImageFolder(root), { imageSizePx: SIZE_PX, channels: 'auto' });
    assert.equal(set.channels, 3);
    assert.equal(set.pixels.length, 2 * SIZE_PX * SIZE_PX * 3);
    assertColourNear(pixelAt(set.pixels, 1, 0, 0, 3), RED, 1, 'red stays red');
  });

  test('channels 1 converts colour to one grey channel', async () => {
    const root = await makeFolder('forced-grey', { 'red.png': solidPng(12, 12, RED), 'grey.png': greyPng(12, 12, 140) });
    const set = await loadImageSet(await scanImageFolder(root), { imageSizePx: SIZE_PX, channels: 1 });
    assert.equal(set.channels, 1);
    assert.equal(set.pixels.length, 2 * SIZE_PX * SIZE_PX);
    assert.ok(Math.abs(pixelAt(set.pixels, 0, 1, 1, 1)[0] - 140) <= 1);
  });
});

describe('resize', () => {
  test('covers and centre-crops like Resize + CenterCrop', async () => {
    // 30×10: a red band on each side (5 px) and blue in the middle; the centre 10×10 square is all blue.
    const wide = Buffer.alloc(30 * 10 * 3);
    for (let y = 0; y < 10; y++) for (let x = 0; x < 30; x++) wide.set(x < 5 || x >= 25 ? RED : BLUE, (y * 30 + x) * 3);
    const root = await makeFolder('wide', { 'wide.png': await rawToSharp(wide, 30, 10, 3).png().toBuffer() });
    const pixels = await decodeImage(path.join(root, 'wide.png'), 5, 3);
    assert.equal(pixels.length, 5 * 5 * 3);
    for (let i = 0; i < 25; i++) assertColourNear(Array.from(pixels.subarray(i * 3, i * 3 + 3)), BLUE, 2, `pixel ${i}`);
  });
});

describe('decodeImage', () => {
  test('returns S*S*C pixels', async () => {
    const pixels = await decodeImage(path.join(oddRoot, 'solid.png'), 4, 3);
    assert.equal(pixels.length, 4 * 4 * 3);
    assertColourNear(Array.from(pixels.subarray(0, 3)), RED, 1, 'solid');
  });

  test('throws DECODE_FAILED naming the file and the reason', async () => {
    for (const [name, pattern] of [
      ['truncated.png', /truncated or corrupt image/],
      ['truncated.jpg', /truncated or corrupt image: VipsJpeg: premature end of JPEG image/],
      ['text.jpg', /not an image/],
      ['missing.png', /file not found/],
    ] as const) {
      await assert.rejects(decodeImage(path.join(oddRoot, name), 4, 3), (error: unknown) => {
        assert.ok(error instanceof EngineError);
        assert.equal(error.code, 'DECODE_FAILED');
        assert.ok(error.message.includes(name), error.message);
        assert.match(error.message, pattern);
        return true;
      });
    }
  });
});

describe('failure modes of the whole set', () => {
  test('an aborted signal throws CANCELLED', async () => {
    const scan = await scanImageFolder(oddRoot);
    const controller = new AbortController();
    const loading = loadImageSet(scan, {
      imageSizePx: SIZE_PX,
      channels: 3,
      signal: controller.signal,
      concurrency: 1,
      onProgress: (done) => {
        if (done === 2) controller.abort();
      },
    });
    await assert.rejects(loading, (error: unknown) => error instanceof EngineError && error.code === 'CANCELLED');
  });

  test('a folder where nothing decodes is NO_IMAGES', async () => {
    const root = await makeFolder('all-broken', { 'a.png': Buffer.alloc(0), 'b.jpg': Buffer.from('nope') });
    await assert.rejects(
      loadImageSet(await scanImageFolder(root), { imageSizePx: SIZE_PX, channels: 3 }),
      (error: unknown) => error instanceof EngineError && error.code === 'NO_IMAGES' && /None of the 2 image files/.test(error.message),
    );
  });
});
