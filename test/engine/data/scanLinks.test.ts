// Symbolic links and special files in an images folder: a link out of the folder (to a file or a folder) is
// skipped with its reason and never decoded, a link inside still counts, and a FIFO or socket with an image's name
// is listed as skipped ("not a regular file") instead of left out without a word.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, promises as fs, symlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { before, after, test } from 'node:test';
import sharp from 'sharp';
import { scanImageFolder } from '../../../src/engine/data/scan';
import { cachedIndex } from '../../../src/engine/index/runQueries';
import { silentContext } from '../../../src/engine/jobContext';
import { train } from '../../../src/engine/jobs/train';
import type { TrainOptions } from '../../../src/protocol/options';
import { tempDir } from '../../tempDir';

process.env.CLUSTER_LENS_THREADS ??= '1';

const tinyOptions: Partial<TrainOptions> = { imageSizePx: 12, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 4, batchSize: 8, localCrops: 1, localCropSizePx: 8, epochs: 1, minutes: 0, device: 'cpu' };
let root: string;
let outside: string;
let socket: net.Server | undefined;
const canaries = ['canary-dir/canary.png', 'canary-file.png'];

function png(seed: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="black"/><rect x="${seed % 6}" y="${(seed * 3) % 7}" width="8" height="${4 + (seed % 5)}" fill="#fff"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

before(async () => {
  // The canaries: images outside the chosen folder that a link leads to.
  outside = tempDir('cl-scan-outside-');
  mkdirSync(path.join(outside, 'canary-dir'));
  for (const [i, canary] of canaries.entries()) await fs.writeFile(path.join(outside, canary), await png(100 + i));
  root = tempDir('cl-scan-links-');
  for (const folder of ['a', 'b']) {
    mkdirSync(path.join(root, folder));
    for (let i = 0; i < 6; i++) await fs.writeFile(path.join(root, folder, `${i}.png`), await png(i + (folder === 'a' ? 0 : 10)));
  }
  // Out of the folder: a folder link and a file link.
  symlinkSync(path.join(outside, 'canary-dir'), path.join(root, 'a', 'linked-dir'));
  symlinkSync(path.join(outside, 'canary-file.png'), path.join(root, 'a', 'linked-file.png'));
  // Inside the folder: a file link (relative) and a folder link (absolute, to a hidden folder the walk does not
  // enter by itself) stay usable.
  symlinkSync('../a/0.png', path.join(root, 'b', 'alias.png'));
  mkdirSync(path.join(root, '.store', 'c'), { recursive: true });
  for (let i = 0; i < 4; i++) await fs.writeFile(path.join(root, '.store', 'c', `${i}.png`), await png(20 + i));
  symlinkSync(path.join(root, '.store', 'c'), path.join(root, 'c'));
  // Special files with an image's name: a FIFO (opening it blocks for ever) and a socket.
  execFileSync('mkfifo', [path.join(root, 'a', 'x.png')]);
  socket = net.createServer();
  await new Promise<void>((resolve) => socket!.listen(path.join(root, 'b', 's.png'), resolve));
  // A link to the FIFO: still not a regular file.
  symlinkSync(path.join(root, 'a', 'x.png'), path.join(root, 'b', 'to-fifo.png'));
});

after(() => socket?.close());

test('scan: links out of the folder are skipped with their reason; links inside count; special files are listed', async () => {
  const scan = await scanImageFolder(root);
  const files = scan.files.map((file) => file.path);
  const reasons = Object.fromEntries(scan.skipped.map((item) => [item.path, item.reason]));
  for (const file of files) assert.ok(!file.includes('canary') && !file.startsWith('a/linked'), `${file} leads outside: ${JSON.stringify(files)}`);
  assert.match(reasons['a/linked-dir/'] ?? '', /symbolic link to ".*canary-dir", outside the images folder/);
  assert.match(reasons['a/linked-file.png'] ?? '', /symbolic link to ".*canary-file\.png", outside the images folder/);
  assert.ok(files.includes('b/alias.png'), 'a file link inside the folder counts');
  assert.deepEqual(files.filter((file) => file.startsWith('c/')), ['c/0.png', 'c/1.png', 'c/2.png', 'c/3.png'], 'a folder link inside the folder is walked');
  assert.deepEqual(scan.labelNames, ['a', 'b', 'c']);
  assert.match(reasons['a/x.png'] ?? '', /not a regular file \(a FIFO/);
  assert.match(reasons['b/s.png'] ?? '', /not a regular file \(a socket\)/);
  assert.match(reasons['b/to-fifo.png'] ?? '', /not a regular file \(a FIFO/);
  assert.deepEqual(Object.keys(reasons).sort(), ['a/linked-dir/', 'a/linked-file.png', 'a/x.png', 'b/s.png', 'b/to-fifo.png']);
});

test('scan: followSymlinksOutside takes the outside links in; special files stay out', async () => {
  const scan = await scanImageFolder(root, { followSymlinksOutside: true });
  const files = scan.files.map((file) => file.path);
  assert.ok(files.includes('a/linked-dir/canary.png') && files.includes('a/linked-file.png'), JSON.stringify(files));
  assert.ok(scan.skipped.some((item) => item.path === 'a/x.png' && /FIFO/.test(item.reason)));
});

test('train: the outside canaries are never decoded, the FIFO does not block, and the inside link is trained on', { timeout: 120_000 }, async () => {
  const runDir = path.join(tempDir('cl-scan-links-run-'), 'run');
  const result = await train({ imagesDir: root, runDir, options: tinyOptions }, silentContext());
  const index = await cachedIndex(runDir);
  const paths = index.header.records.map((record) => record.path);
  assert.equal(result.images, paths.length);
  for (const file of paths) assert.ok(!file.includes('canary') && !file.startsWith('a/linked'), `${file} leads outside`);
  assert.ok(paths.includes('b/alias.png') && paths.includes('c/0.png'), JSON.stringify(paths));
  const skipped = result.skipped.map((item) => item.path);
  for (const expected of ['a/linked-dir/', 'a/linked-file.png', 'a/x.png']) assert.ok(skipped.includes(expected), `${expected} in ${JSON.stringify(skipped)}`);
});
