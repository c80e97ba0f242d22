import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EngineError } from '../../../src/engine/errors';
import { scanImageFolder } from '../../../src/engine/data/scan';

let tempRoot: string;

before(async () => {
  tempRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'cluster-lens-scan-'));
});
after(async () => {
  await fs.rm(tempRoot, { recursive: true, force: true });
});

async function makeTree(name: string, files: string[]): Promise<string> {
  const root = path.join(tempRoot, name);
  for (const file of files) {
    await fs.mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await fs.writeFile(path.join(root, file), 'x');
  }
  await fs.mkdir(root, { recursive: true });
  return root;
}

async function rejectsWithCode(promise: Promise<unknown>, code: string, messagePattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof EngineError, `expected EngineError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, messagePattern);
    return true;
  });
}

describe('scanImageFolder', () => {
  test('labels come from first-level folders, sorted, with root files unlabelled', async () => {
    const root = await makeTree('labelled', [
      'dogs/b.PNG',
      'dogs/a.jpg',
      'dogs/deep/c.webp',
      'cats/z.JPEG',
      'cats/notes.txt',
      'birds/readme.md',
      'loose.gif',
      '.hidden/x.png',
      'cats/.DS_Store',
      'other/img.heic',
    ]);
    const scan = await scanImageFolder(root);
    assert.equal(scan.root, root);
    assert.deepEqual(scan.labelNames, ['cats', 'dogs']);
    assert.deepEqual(scan.files, [
      { path: 'cats/z.JPEG', label: 0 },
      { path: 'dogs/a.jpg', label: 1 },
      { path: 'dogs/b.PNG', label: 1 },
      { path: 'dogs/deep/c.webp', label: 1 },
      { path: 'loose.gif', label: -1 },
    ]);
    assert.deepEqual(scan.skipped.map((item) => item.path), ['other/img.heic']);
    assert.match(scan.skipped[0].reason, /unsupported image format \(\.heic\)/);
  });

  test('every supported extension is found, case-insensitively', async () => {
    const extensions = ['png', 'jpg', 'jpeg', 'webp', 'bmp', 'gif', 'tif', 'tiff'];
    const names = extensions.flatMap((extension) => [`lower.${extension}`, `UPPER.${extension.toUpperCase()}`]);
    const scan = await scanImageFolder(await makeTree('extensions', [...names, 'no-extension', 'png', 'file.svg.txt']));
    assert.equal(scan.files.length, names.length);
    assert.deepEqual(scan.labelNames, []);
    assert.ok(scan.files.every((file) => file.label === -1));
  });

  test('one subfolder of images is not a labelling', async () => {
    const scan = await scanImageFolder(await makeTree('single', ['only/a.png', 'only/b.png', 'empty-ish/notes.txt']));
    assert.deepEqual(scan.labelNames, []);
    assert.deepEqual(scan.files, [
      { path: 'only/a.png', label: -1 },
      { path: 'only/b.png', label: -1 },
    ]);
  });

  test('order is by path segment and independent of creation order', async () => {
    const names = ['b/2.png', 'a-b/1.png', 'a/z.png', 'a/b/1.png', 'B/1.png', 'é/1.png', 'a/10.png', 'a/9.png'];
    const forward = await scanImageFolder(await makeTree('order-forward', names));
    const backward = await scanImageFolder(await makeTree('order-backward', [...names].reverse()));
    const expected = ['B/1.png', 'a/10.png', 'a/9.png', 'a/b/1.png', 'a/z.png', 'a-b/1.png', 'b/2.png', 'é/1.png'];
    assert.deepEqual(forward.files.map((file) => file.path), expected);
    assert.deepEqual(backward.files, forward.files);
    assert.deepEqual(forward.labelNames, ['B', 'a', 'a-b', 'b', 'é']);
  });

  test('symbolic links are followed once, and a loop is reported instead of recursing', async () => {
    const root = await makeTree('links', ['real/a.png', 'other/b.png']);
    await fs.symlink(path.join(root, 'real'), path.join(root, 'alias'));
    await fs.symlink(root, path.join(root, 'real', 'back-to-root'));
    await fs.symlink(path.join(root, 'real', 'a.png'), path.join(root, 'other', 'linked.png'));
    await fs.symlink(path.join(root, 'missing.png'), path.join(root, 'other', 'broken.png'));
    const scan = await scanImageFolder(root);
    // "alias" sorts before "real", so the folder is scanned under that name and "real" is the duplicate.
    assert.deepEqual(
      scan.files.map((file) => file.path),
      ['alias/a.png', 'other/b.png', 'other/linked.png'],
    );
    const reasons = Object.fromEntries(scan.skipped.map((item) => [item.path, item.reason]));
    assert.match(reasons['alias/back-to-root/'] ?? '', /symbolic link loop/);
    assert.match(reasons['real/'] ?? '', /same folder as "alias"/);
    assert.match(reasons['other/broken.png'] ?? '', /broken symbolic link/);
    assert.equal(scan.skipped.length, 3);
  });

  test('an unreadable folder is reported and skipped', { skip: process.getuid?.() === 0 ? 'root can read any folder' : false }, async () => {
    const root = await makeTree('unreadable', ['ok/a.png', 'locked/b.png']);
    await fs.chmod(path.join(root, 'locked'), 0o000);
    try {
      const scan = await scanImageFolder(root);
      assert.deepEqual(scan.files.map((file) => file.path), ['ok/a.png']);
      assert.deepEqual(scan.skipped.map((item) => item.path), ['locked/']);
      assert.match(scan.skipped[0].reason, /cannot read folder: permission denied/);
    } finally {
      await fs.chmod(path.join(root, 'locked'), 0o755);
    }
  });

  test('a missing folder or a file is NOT_FOUND, naming the path', async () => {
    const missing = path.join(tempRoot, 'does-not-exist');
    await rejectsWithCode(scanImageFolder(missing), 'NOT_FOUND', /does-not-exist" does not exist/);
    const root = await makeTree('file-root', ['a.png']);
    await rejectsWithCode(scanImageFolder(path.join(root, 'a.png')), 'NOT_FOUND', /is a file, not a folder/);
  });

  test('a folder without images is NO_IMAGES, naming the folder and the extensions', async () => {
    const root = await makeTree('no-images', ['notes.txt', 'sub/data.csv']);
    await rejectsWithCode(scanImageFolder(root), 'NO_IMAGES', /no-images".*\.png, \.jpg, \.jpeg, \.webp, \.bmp, \.gif, \.tif, \.tiff/);
    await rejectsWithCode(scanImageFolder(await makeTree('empty', [])), 'NO_IMAGES', /No images found/);
  });

  test('an aborted signal cancels the scan', async () => {
    const root = await makeTree('abort', ['a/1.png', 'b/2.png']);
    const controller = new AbortController();
    controller.abort();
    await rejectsWithCode(scanImageFolder(root, { signal: controller.signal }), 'CANCELLED', /cancelled/);
  });
});
