// SwAV's embedding queue (swav/queue.ts): past embeddings of each assigned crop, newest first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EmbeddingQueue } from '../../../src/engine/swav/queue';

/** A batch of `rows` embeddings of `dims` numbers for one crop, each row filled with its own label. */
const batchOf = (labels: number[], dims: number) => Float32Array.from(labels.flatMap((label) => new Array<number>(dims).fill(label)));

/** Each row's label (its first number), per crop. */
const rowLabels = (queue: EmbeddingQueue) => queue.embeddings()!.map((slot) => Array.from({ length: queue.length }, (_, row) => slot[row * queue.dims]));

test('queue: undefined until full, then the newest rows first, per crop; the oldest rows drop', () => {
  const queue = new EmbeddingQueue(6, 2, 3);
  assert.equal(queue.embeddings(), undefined);
  queue.push([batchOf([1, 2], 3), batchOf([-1, -2], 3)]);
  assert.equal(queue.isFull, false);
  assert.equal(queue.embeddings(), undefined, 'two of six rows: not yet');
  queue.push([batchOf([3, 4], 3), batchOf([-3, -4], 3)]);
  assert.equal(queue.embeddings(), undefined, 'four of six rows: not yet');
  queue.push([batchOf([5, 6], 3), batchOf([-5, -6], 3)]);
  assert.equal(queue.isFull, true);
  const full = queue.embeddings()!;
  assert.equal(full.length, 2, 'one array per assigned crop');
  full.forEach((slot) => assert.equal(slot.length, 6 * 3));
  assert.deepEqual(rowLabels(queue), [[5, 6, 3, 4, 1, 2], [-5, -6, -3, -4, -1, -2]]);
  // Every number of a row moves with it.
  assert.deepEqual(Array.from(full[0].subarray(0, 6)), [5, 5, 5, 6, 6, 6]);

  queue.push([batchOf([7, 8], 3), batchOf([-7, -8], 3)]);
  assert.deepEqual(rowLabels(queue), [[7, 8, 5, 6, 3, 4], [-7, -8, -5, -6, -3, -4]], 'the oldest batch (1, 2) dropped');
});

test('queue: a batch as long as the queue replaces it; a longer one fills it with its first rows at once', () => {
  const queue = new EmbeddingQueue(4, 1, 2);
  queue.push([batchOf([1, 2, 3, 4], 2)]);
  assert.deepEqual(rowLabels(queue), [[1, 2, 3, 4]]);
  queue.push([batchOf([5, 6, 7, 8], 2)]);
  assert.deepEqual(rowLabels(queue), [[5, 6, 7, 8]]);

  const small = new EmbeddingQueue(3, 2, 2);
  small.push([batchOf([1, 2, 3, 4, 5], 2), batchOf([-1, -2, -3, -4, -5], 2)]);
  assert.equal(small.isFull, true, 'full after one batch larger than the queue');
  assert.deepEqual(rowLabels(small), [[1, 2, 3], [-1, -2, -3]]);
  small.push([batchOf([6, 7, 8, 9, 10], 2), batchOf([-6, -7, -8, -9, -10], 2)]);
  assert.deepEqual(rowLabels(small), [[6, 7, 8], [-6, -7, -8]]);
});

test('queue: batches that do not divide the length; dispose empties it', () => {
  const queue = new EmbeddingQueue(5, 1, 1);
  queue.push([batchOf([1, 2, 3], 1)]);
  assert.equal(queue.embeddings(), undefined);
  queue.push([batchOf([4, 5, 6], 1)]);
  assert.deepEqual(rowLabels(queue), [[4, 5, 6, 1, 2]]);
  queue.dispose();
  assert.equal(queue.embeddings(), undefined, 'empty again after dispose');
  queue.push([batchOf([7, 8, 9, 10, 11], 1)]);
  assert.deepEqual(rowLabels(queue), [[7, 8, 9, 10, 11]]);
});
