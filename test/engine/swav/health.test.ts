import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AssignmentTracker, HealthMonitor, usageEntropy } from '../../../src/engine/swav/health';

test('stability: the share of images whose cluster changed, counted over images seen in both epochs (hand-computed)', () => {
  const tracker = new AssignmentTracker(6, 3);
  assert.equal(tracker.changedShare(), undefined, 'nothing to compare in the first epoch');
  // Epoch 1 sees images 0–4 (image 5 falls in the dropped partial batch).
  tracker.record([3, 0, 4], [2, 0, 1]);
  tracker.record([1, 2], [0, 1]);
  assert.equal(tracker.prototypesUsed, 3);
  tracker.endEpoch();
  // Epoch 2: image 0 stays in 0, 1 moves 0→2, 2 stays in 1, 3 moves 2→0, 5 is new (not counted), 4 unseen.
  tracker.record([0, 1, 2], [0, 2, 1]);
  tracker.record([3, 5], [0, 0]);
  // Seen in both: 0, 1, 2, 3; changed: 1 and 3.
  assert.equal(tracker.changedShare(), 2 / 4);
  assert.deepEqual(Array.from(tracker.counts), [3, 1, 1]);
  tracker.endEpoch();
  assert.equal(tracker.prototypesUsed, 0, 'counts restart each epoch');
});

test('usage entropy: ln K when even, 0 when one prototype takes everything', () => {
  assert.ok(Math.abs(usageEntropy([5, 5, 5, 5]) - Math.log(4)) < 1e-12);
  assert.equal(usageEntropy([0, 9, 0]), 0);
  assert.ok(Math.abs(usageEntropy([1, 3]) - -(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75))) < 1e-12);
  assert.equal(usageEntropy([0, 0]), 0);
});

const images = Array.from({ length: 40 }, (_, i) => i);
const queue = { queueActive: false };

/** One epoch of steps of 10 images; `cluster(i)` gives image i's cluster and `loss` each step's loss. */
function epoch(monitor: HealthMonitor, cluster: (i: number) => number, loss: number) {
  let last;
  for (let start = 0; start < images.length; start += 10) {
    const batch = images.slice(start, start + 10);
    last = monitor.observeStep(batch, batch.map(cluster), loss, queue);
  }
  return { last: last!, end: monitor.endEpoch(queue) };
}

test('health: every image on one prototype is collapsing by the end of the first epoch, with advice', () => {
  const monitor = new HealthMonitor(images.length, 20);
  const { last, end } = epoch(monitor, () => 7, 2.1);
  assert.equal(last.state, 'learning', 'within the epoch the usage is not judged yet');
  assert.equal(end.state, 'collapsing');
  assert.equal(end.prototypesUsed, 1);
  assert.equal(end.usageEntropy, 0);
  assert.match(end.advice, /learning rate/);
});

test('health: a loss stuck at ln K is collapsing, even with even usage; one near ln K but falling is not', () => {
  const stuck = new HealthMonitor(images.length, 8);
  const stuckStates = [1, 1, 1].map(() => epoch(stuck, (i) => i % 8, Math.log(8)).end.state);
  assert.deepEqual(stuckStates, ['learning', 'collapsing', 'collapsing']);
  // A healthy start: near ln K, falling by 2% an epoch.
  const healthy = new HealthMonitor(images.length, 8);
  const healthyStates = [1, 0.98, 0.96].map((share) => epoch(healthy, (i) => i % 8, share * Math.log(8)).end.state);
  assert.deepEqual(healthyStates, ['learning', 'learning', 'learning']);
});

test('health: a NaN loss is diverged at once; a loss rising for three epochs is diverged', () => {
  const monitor = new HealthMonitor(images.length, 8);
  assert.equal(monitor.observeStep([0, 1], [0, 1], NaN, queue).state, 'diverged');
  const rising = new HealthMonitor(images.length, 8);
  const states = [1.0, 1.2, 1.5, 1.8].map((loss) => epoch(rising, (i) => i % 8, loss).end.state);
  assert.deepEqual(states, ['learning', 'learning', 'learning', 'diverged']);
});

test('health: converged once the changes and the loss stop falling, window against window, for two epochs; not before', () => {
  const monitor = new HealthMonitor(images.length, 8);
  // Each epoch moves the images with (i + e) % period === 0 to the next prototype: a quarter of them in epochs
  // 1–3, a tenth from epoch 4 on.
  const periods = [4, 4, 4, 4, 10, 10, 10, 10, 10, 10, 10];
  const losses = [1.5, 1.3, 1.2, 1.1, 1.0, 1.0, 1.0, 0.999, 1.0, 1.0, 1.0];
  const clusters = images.map((i) => i % 8);
  const seen = periods.map((period, e) => {
    if (e > 0) for (const i of images) if ((i + e) % period === 0) clusters[i] = (clusters[i] + 1) % 8;
    return epoch(monitor, (i) => clusters[i], losses[e]).end;
  });
  assert.deepEqual(
    seen.map((h) => h.changedShare),
    [undefined, 0.25, 0.25, 0.25, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
  );
  // Windows of 3: epochs 7–9 against 4–6 is the first pair with no drop (epoch 3 still moved a quarter of them);
  // 8–10 against 5–7 the second.
  assert.deepEqual(
    seen.map((h) => h.stableEpochs),
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2],
  );
  assert.deepEqual(seen.map((h) => h.state).slice(-3), ['learning', 'learning', 'converged']);
  assert.equal(monitor.isConverged, true);
});
