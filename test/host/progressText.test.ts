import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProgressEvent } from '../../src/protocol/engine';
import { describeProgress, formatDuration, stopReasonText } from '../../src/host/progressText';

const event = (fields: Partial<ProgressEvent>): ProgressEvent => ({ type: 'progress', id: 1, phase: 'train', fraction: 0, ...fields });

test('progress text: every phase of a run says what it does, from decoding to indexing', () => {
  const decoding = describeProgress(event({ phase: 'decode', message: 'Decoding images 40/600' }));
  assert.equal(decoding.status, '$(sync~spin) Cluster Lens: decoding images 40/600');
  assert.equal(decoding.header, 'Decoding images 40/600');
  const firstStep = describeProgress(event({ phase: 'train', step: 0, message: 'Training: step 1 of 80 (the first step is the slowest)' }));
  assert.match(firstStep.header, /^Training: step 1 of 80/);
  assert.match(firstStep.status, /training: step 1 of 80/);
  const training = describeProgress(event({ phase: 'train', epoch: 2, epochs: 8, step: 12, totalSteps: 48, loss: 3.14159, etaSeconds: 75 }));
  assert.equal(training.status, '$(sync~spin) Cluster Lens: epoch 2/8 · loss 3.142');
  assert.equal(training.notification, 'epoch 2/8, loss 3.142, 1:15 left');
  assert.equal(training.header, 'Training: epoch 2/8, step 12 of 48, 1:15 left');
  const indexing = describeProgress(event({ phase: 'index', message: 'Embedding images 64/600' }));
  assert.equal(indexing.header, 'Indexing: Embedding images 64/600');
  assert.equal(describeProgress(event({ phase: 'scan' })).header, 'Scanning the folder');
});

test('progress text: durations read as minutes and seconds', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(65.4), '1:05');
  assert.equal(formatDuration(3723), '1:02:03');
});

test('progress text: the health state goes on the status bar; trouble gets a warning icon and the advice', () => {
  const health = { advice: 'Lower the learning rate.', epochsObserved: 2, prototypesUsed: 1, prototypes: 30, usageEntropy: 0, stableEpochs: 0, lossReference: Math.log(30), queueActive: false };
  const learning = describeProgress(event({ epoch: 3, step: 40, loss: 2.5, health: { ...health, state: 'learning' } }));
  assert.equal(learning.status, '$(sync~spin) Cluster Lens: epoch 3 · loss 2.500 · still learning');
  const collapsing = describeProgress(event({ epoch: 3, step: 40, loss: 3.4, health: { ...health, state: 'collapsing' } }));
  assert.equal(collapsing.status, '$(warning) Cluster Lens: epoch 3 · loss 3.400 · collapsing');
  assert.equal(collapsing.notification, 'epoch 3, loss 3.400, collapsing. Lower the learning rate.');
  assert.equal(stopReasonText({ stopReason: 'converged', epochs: 12 }), 'converged after 12 epochs (assignments stable, loss flat)');
  assert.equal(stopReasonText({ stopReason: 'time', epochs: 12, health: { ...health, state: 'learning' } }), 'the time budget ran out while the run was still learning');
  assert.equal(stopReasonText({ stopReason: 'epochs', epochs: 3 }), 'the 3 epochs asked for are done');
});
