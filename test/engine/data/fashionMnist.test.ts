import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import {
  DEFAULT_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASS_NAMES,
  readFashionMnistSplit,
  writeFashionMnistPngs,
} from '../../../src/engine/data/fashionMnist';
import { EngineError } from '../../../src/engine/errors';
import { requirements, skipUnless } from '../../requirements';

const ROWS_PX = 4;
const COLUMNS_PX = 3;

let tempRoot: string;

before(async () => {
  tempRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'cluster-lens-fmnist-'));
});
after(async () => {
  await fs.rm(tempRoot, { recursive: true, force: true });
});

function idxImages(count: number, pixelAt: (image: number, offset: number) => number, magic = 0x803): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(magic, 0);
  header.writeUInt32BE(count, 4);
  header.writeUInt32BE(ROWS_PX, 8);
  header.writeUInt32BE(COLUMNS_PX, 12);
  const pixels = Buffer.alloc(count * ROWS_PX * COLUMNS_PX);
  for (let i = 0; i < pixels.length; i++) pixels[i] = pixelAt(Math.floor(i / (ROWS_PX * COLUMNS_PX)), i % (ROWS_PX * COLUMNS_PX));
  return Buffer.concat([header, pixels]);
}

function idxLabels(labels: number[], magic = 0x801): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(magic, 0);
  header.writeUInt32BE(labels.length, 4);
  return Buffer.concat([header, Buffer.from(labels)]);
}

/** Writes the four gzipped idx files; test image i has label i % 10 and pixel value 10·i + offset. */
async function makeIdxDir(name: string, overrides: Partial<Record<string, Buffer>> = {}): Promise<string> {
  const directory = path.join(tempRoot, name);
  await fs.mkdir(directory, { recursive: true });
  const pixelAt = (image: number, offset: number): number => (image * 10 + offset) % 256;
  const files: Record<string, Buffer> = {
    'train-images-idx3-ubyte': idxImages(12, pixelAt),
    'train-labels-idx1-ubyte': idxLabels(Array.from({ length: 12 }, (_, i) => (i * 3) % 10)),
    't10k-images-idx3-ubyte': idxImages(23, pixelAt),
    't10k-labels-idx1-ubyte': idxLabels(Array.from({ length: 23 }, (_, i) => i % 10)),
    ...overrides,
  };
  for (const [file, bytes] of Object.entries(files)) {
    if (bytes) await fs.writeFile(path.join(directory, `${file}.gz`), zlib.gzipSync(bytes));
  }
  return directory;
}

async function greyPixels(file: string): Promise<number[]> {
  const { data, info } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 1);
  return Array.from(data);
}

async function listPngs(directory: string): Promise<string[]> {
  const entries = await fs.readdir(directory, { recursive: true });
  return entries.filter((entry) => entry.endsWith('.png')).map((entry) => entry.split(path.sep).join('/')).sort();
}

describe('writeFashionMnistPngs', () => {
  test('writes <split>/<class>/<index>.png with the exact pixels', async () => {
    const idxDir = await makeIdxDir('full');
    const outDir = path.join(tempRoot, 'out-full');
    const progress: number[] = [];
    const result = await writeFashionMnistPngs({ idxDir, outDir, onProgress: (done, total) => progress.push(done / total) });
    assert.equal(result.written, 35);
    assert.deepEqual(result.perClass.test, [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
    assert.equal(progress[progress.length - 1], 1);
    const files = await listPngs(outDir);
    assert.equal(files.length, 35);
    assert.ok(files.includes('test/2-pullover/00012.png'));
    assert.ok(files.includes('train/9-ankle-boot/00003.png'));
    assert.deepEqual(
      (await fs.readdir(path.join(outDir, 'test'))).sort(),
      [...FASHION_MNIST_CLASS_NAMES],
    );
    const pixels = await greyPixels(path.join(outDir, 'test/2-pullover/00012.png'));
    assert.deepEqual(pixels, Array.from({ length: ROWS_PX * COLUMNS_PX }, (_, offset) => 120 + offset));
    const metadata = await sharp(path.join(outDir, 'test/2-pullover/00012.png')).metadata();
    assert.deepEqual([metadata.width, metadata.height, metadata.channels], [COLUMNS_PX, ROWS_PX, 1]);
  });

  test('perClassLimit keeps the first images of each class; splitFolders false drops the split level', async () => {
    const idxDir = await makeIdxDir('limited');
    const outDir = path.join(tempRoot, 'out-limited');
    const result = await writeFashionMnistPngs({ idxDir, outDir, splits: ['test'], perClassLimit: 2, splitFolders: false });
    assert.equal(result.written, 20);
    const files = await listPngs(outDir);
    assert.deepEqual(files.filter((file) => file.startsWith('0-tshirt-top/')), ['0-tshirt-top/00000.png', '0-tshirt-top/00010.png']);
    assert.equal(files.length, 20);
    await assert.rejects(
      writeFashionMnistPngs({ idxDir, outDir, splitFolders: false }),
      (error: unknown) => error instanceof EngineError && error.code === 'BAD_REQUEST',
    );
  });

  test('missing idx files are NOT_FOUND and say how to get them', async () => {
    const idxDir = await makeIdxDir('missing');
    await fs.rm(path.join(idxDir, 't10k-labels-idx1-ubyte.gz'));
    await assert.rejects(
      writeFashionMnistPngs({ idxDir, outDir: path.join(tempRoot, 'out-missing'), splits: ['test'] }),
      (error: unknown) => {
        assert.ok(error instanceof EngineError);
        assert.equal(error.code, 'NOT_FOUND');
        assert.match(error.message, /t10k-labels-idx1-ubyte\.gz/);
        assert.match(error.message, /apt-get install dataset-fashion-mnist/);
        return true;
      },
    );
  });

  test('a bad magic number, a short file or a count mismatch is refused', async () => {
    const cases: Array<[string, Partial<Record<string, Buffer>>, RegExp]> = [
      ['bad-image-magic', { 't10k-images-idx3-ubyte': idxImages(23, () => 0, 0x804) }, /magic number 0x00000804, expected 0x00000803/],
      ['bad-label-magic', { 't10k-labels-idx1-ubyte': idxLabels([1, 2], 0x803) }, /magic number 0x00000803, expected 0x00000801/],
      ['short', { 't10k-images-idx3-ubyte': idxImages(23, () => 0).subarray(0, 100) }, /bytes where the header promises/],
      ['mismatch', { 't10k-labels-idx1-ubyte': idxLabels([1, 2, 3]) }, /3 labels for 23 images/],
      ['bad-label', { 't10k-labels-idx1-ubyte': idxLabels(Array(23).fill(10)) }, /label 10 is outside 0\.\.9/],
    ];
    for (const [name, overrides, pattern] of cases) {
      const idxDir = await makeIdxDir(name, overrides);
      await assert.rejects(readFashionMnistSplit(idxDir, 'test'), (error: unknown) => {
        assert.ok(error instanceof EngineError, name);
        assert.equal(error.code, 'DECODE_FAILED', name);
        assert.match(error.message, pattern, name);
        return true;
      });
    }
  });
});

describe('Debian dataset-fashion-mnist and the shipped sample', { skip: skipUnless(requirements.fashionMnist) }, () => {
  test('the real test split has 10,000 images of 28×28, 1,000 per class', async () => {
    const split = await readFashionMnistSplit(DEFAULT_FASHION_MNIST_DIR, 'test');
    assert.deepEqual([split.count, split.rowsPx, split.columnsPx], [10000, 28, 28]);
    const perClass = new Array(10).fill(0);
    for (const label of split.labels) perClass[label]++;
    assert.deepEqual(perClass, new Array(10).fill(1000));
  });

  test('sample/fashion-mnist holds the first 100 test images of each class, unchanged', async () => {
    const sampleDir = path.join(__dirname, '..', '..', '..', 'sample', 'fashion-mnist');
    const files = await listPngs(sampleDir);
    assert.equal(files.length, 1000);
    const split = await readFashionMnistSplit(DEFAULT_FASHION_MNIST_DIR, 'test');
    const expected: string[] = [];
    const counts = new Array(10).fill(0);
    for (let index = 0; index < split.count; index++) {
      const label = split.labels[index];
      if (counts[label]++ < 100) expected.push(`${FASHION_MNIST_CLASS_NAMES[label]}/${String(index).padStart(5, '0')}.png`);
    }
    assert.deepEqual(files, expected.sort());
    for (const file of [expected[0], expected[555], expected[999]]) {
      const index = Number(path.basename(file, '.png'));
      assert.deepEqual(await greyPixels(path.join(sampleDir, file)), Array.from(split.pixels.subarray(index * 784, (index + 1) * 784)));
    }
    assert.match(await fs.readFile(path.join(sampleDir, 'ATTRIBUTION.md'), 'utf8'), /Zalando SE[\s\S]*MIT/);
  });
});
