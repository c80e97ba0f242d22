import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReadyQueue } from '../../../src/host/views/readyQueue';

test('holds messages until the webview is ready, then delivers them in order', () => {
  const delivered: number[] = [];
  const queue = new ReadyQueue<number>((message) => delivered.push(message));
  queue.post(1);
  queue.post(2);
  assert.deepEqual(delivered, []);
  queue.markReady();
  queue.post(3);
  assert.deepEqual(delivered, [1, 2, 3]);
});

test('without replay, a reloaded webview is not sent old messages', () => {
  const delivered: number[] = [];
  const queue = new ReadyQueue<number>((message) => delivered.push(message));
  queue.markReady();
  queue.post(1);
  queue.markReady();
  assert.deepEqual(delivered, [1]);
});

test('with replay, a reloaded webview gets what was sent since the last reset', () => {
  const delivered: string[] = [];
  const queue = new ReadyQueue<string>((message) => delivered.push(message), { replayOnReload: true });
  queue.post('old');
  queue.markReady();
  queue.reset();
  queue.post('loading');
  queue.post('result');
  delivered.length = 0;
  queue.markReady(); // the page reloaded
  assert.deepEqual(delivered, ['loading', 'result']);
  queue.post('more');
  delivered.length = 0;
  queue.markReady();
  assert.deepEqual(delivered, ['loading', 'result', 'more']);
});
