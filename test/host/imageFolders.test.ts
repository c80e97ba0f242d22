import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { countImages, describeImageCount, imageFolderCandidates, trainingFolderFor } from '../../src/host/imageFolders';
import { tempDir } from '../tempDir';

function files(root: string, folder: string, count: number, extension = '.png'): void {
  mkdirSync(path.join(root, folder), { recursive: true });
  for (let i = 0; i < count; i++) writeFileSync(path.join(root, folder, `${i}${extension}`), '');
}

test('image folders: the workspace folder first with its count, then subfolders; chains collapse; runs, dot and dependency folders are left out', async () => {
  const root = tempDir('cl-folders-');
  files(root, 'fashion/trousers', 3);
  files(root, 'fashion/bags', 2);
  files(root, 'photos', 4, '.JPG');
  files(root, 'photos', 2, '.txt');
  files(root, 'docs', 5, '.md');
  files(root, '.cluster-lens/run-1', 7);
  files(root, 'node_modules/pkg', 7);
  files(root, 'runs-elsewhere', 7);
  files(root, 'only/one/level/deeper', 1);
  const found = await imageFolderCandidates([root], { exclude: [path.join(root, 'runs-elsewhere')] });
  assert.deepEqual(
    found.map((f) => [path.relative(root, f.folder) || '.', f.images, f.isRoot]),
    [
      ['.', 10, true],
      ['fashion', 5, false],
      ['fashion/bags', 2, false],
      ['fashion/trousers', 3, false],
      // `only` holds one image, all in `only/one`: the deeper folder stands for both.
      ['only/one', 1, false],
      ['photos', 4, false],
    ],
  );
});

test('image folders: a workspace whose images all sit in one folder has one candidate (no question to ask)', async () => {
  const root = tempDir('cl-folders-');
  files(root, 'images', 6);
  files(root, 'notes', 2, '.txt');
  const found = await imageFolderCandidates([root]);
  assert.deepEqual(found.map((f) => path.relative(root, f.folder)), ['images']);
  assert.deepEqual(await imageFolderCandidates([tempDir('cl-empty-')]), []);
});

test('image folders: counting stops at the cap, and the count says so', async () => {
  const root = tempDir('cl-folders-');
  files(root, 'big/a', 30);
  files(root, 'big/b', 30);
  const counted = await countImages(path.join(root, 'big'), 25);
  assert.deepEqual(counted, { images: 25, capped: true });
  assert.deepEqual(await countImages(path.join(root, 'big'), 100), { images: 60, capped: false });
  const budgeted = await countImages(path.join(root, 'big'), 100, 10);
  assert.ok(budgeted.capped && budgeted.images <= 10, `the entry budget stops a walk too (${JSON.stringify(budgeted)})`);
  const found = await imageFolderCandidates([root], { imageCap: 25 });
  // A capped folder is never folded into its child: its true count is unknown.
  assert.deepEqual(found.map((f) => [path.relative(root, f.folder) || '.', f.images, f.capped]), [['.', 25, true], ['big', 25, true], ['big/a', 25, true], ['big/b', 25, true]]);
  assert.equal(describeImageCount({ images: 10_000, capped: true }), '10,000+ images');
  assert.equal(describeImageCount({ images: 1, capped: false }), '1 image');
  assert.equal(describeImageCount({ images: 1234, capped: false }), '1,234 images');
});

test('image folders: an image with no run is trained with its top folder in the workspace', () => {
  assert.equal(trainingFolderFor('/ws/photos/cats/chelsea.png', ['/other', '/ws']), '/ws/photos');
  assert.equal(trainingFolderFor('/ws/chelsea.png', ['/ws']), '/ws');
  assert.equal(trainingFolderFor('/elsewhere/x/chelsea.png', ['/ws']), '/elsewhere/x');
});

test('image folders: past the time budget only the workspace folders are counted', async () => {
  const root = tempDir('cl-folders-');
  files(root, 'a', 2);
  files(root, 'b', 3);
  const found = await imageFolderCandidates([root], { timeBudgetMs: -1 });
  assert.deepEqual(found.map((f) => [f.isRoot, f.images]), [[true, 5]]);
});
