// Paths from a webview (the page's word) open, explain or list only images inside the run's images folder.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { imageInsideAny, imageInsideFolder, pathInsideFolder } from '../../../src/host/views/webviewPaths';
import { tempDir } from '../../tempDir';

let imagesDir: string;
let outside: string;

before(() => {
  outside = tempDir('cl-webview-outside-');
  writeFileSync(path.join(outside, 'secret.png'), 'canary');
  imagesDir = tempDir('cl-webview-images-');
  mkdirSync(path.join(imagesDir, 'cats'));
  writeFileSync(path.join(imagesDir, 'cats', 'a.png'), 'png');
  writeFileSync(path.join(imagesDir, 'notes.txt'), 'text');
  mkdirSync(path.join(imagesDir, 'folder.png'));
  symlinkSync(path.join(outside, 'secret.png'), path.join(imagesDir, 'cats', 'link-out.png'));
  symlinkSync(path.join(imagesDir, 'cats', 'a.png'), path.join(imagesDir, 'link-in.png'));
  symlinkSync(outside, path.join(imagesDir, 'dir-out'));
  execFileSync('mkfifo', [path.join(imagesDir, 'fifo.png')]);
});

test('by text: relative paths inside the folder only', () => {
  assert.equal(pathInsideFolder(imagesDir, 'cats/a.png'), path.join(imagesDir, 'cats', 'a.png'));
  for (const bad of ['../x.png', 'cats/../../x.png', '/etc/passwd', path.join(outside, 'secret.png'), '', '.', 'a\0.png', 42, undefined, ['cats/a.png']]) {
    assert.equal(pathInsideFolder(imagesDir, bad), undefined, JSON.stringify(bad));
  }
  assert.equal(pathInsideFolder('', 'cats/a.png'), undefined);
});

test('on disk: an image file inside the folder once links are resolved', async () => {
  assert.equal(await imageInsideFolder(imagesDir, 'cats/a.png'), path.join(imagesDir, 'cats', 'a.png'));
  assert.equal(await imageInsideFolder(imagesDir, 'link-in.png'), path.join(imagesDir, 'link-in.png'));
  for (const bad of ['cats/link-out.png', 'dir-out/secret.png', '../' + path.basename(outside) + '/secret.png', 'notes.txt', 'folder.png', 'fifo.png', 'missing.png']) {
    assert.equal(await imageInsideFolder(imagesDir, bad), undefined, bad);
  }
});

test('a saved explain state: an image inside one of the folders, by absolute path', async () => {
  const workspace = tempDir('cl-webview-workspace-');
  writeFileSync(path.join(workspace, 'b.jpg'), 'jpg');
  assert.equal(await imageInsideAny([imagesDir, workspace], path.join(workspace, 'b.jpg')), path.join(workspace, 'b.jpg'));
  assert.equal(await imageInsideAny([imagesDir, workspace], path.join(imagesDir, 'cats', 'a.png')), path.join(imagesDir, 'cats', 'a.png'));
  for (const bad of [path.join(outside, 'secret.png'), path.join(imagesDir, 'cats', 'link-out.png'), 'cats/a.png', '/etc/shadow', 7]) {
    assert.equal(await imageInsideAny([imagesDir, workspace], bad), undefined, String(bad));
  }
});
