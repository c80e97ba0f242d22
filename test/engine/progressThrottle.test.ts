import assert from 'node:assert/strict';
import { test } from 'node:test';
import { throttleProgress, type ProgressUpdate } from '../../src/engine/progressThrottle';

test('progress is throttled, but the last update of a phase and of the job always goes out', () => {
  const sent: ProgressUpdate[] = [];
  let clockMs = 0;
  const throttle = throttleProgress((update) => sent.push(update), 200, () => clockMs);
  for (let step = 1; step <= 8; step++) {
    clockMs += 50;
    throttle.progress({ phase: 'train', fraction: step / 10, step });
  }
  // Steps 1 (first) and 5 (200 ms later) went out; 8 is held until the phase changes.
  assert.deepEqual(sent.map((update) => update.step), [1, 5]);
  clockMs += 10;
  throttle.progress({ phase: 'index', fraction: 0.9 });
  assert.deepEqual(sent.map((update) => update.step ?? update.phase), [1, 5, 8, 'index']);
  clockMs += 10;
  throttle.progress({ phase: 'index', fraction: 0.95, message: 'embedding' });
  assert.equal(sent.length, 4, 'within the interval: held');
  throttle.flush();
  assert.equal(sent.at(-1)!.message, 'embedding', 'the job end flushes the held update');
  throttle.flush();
  assert.equal(sent.length, 5, 'nothing is sent twice');
});
