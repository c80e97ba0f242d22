// Attention rollout's arithmetic on hand-made attention: heads averaged, ½·A + ½·I, rows renormalised, layers multiplied.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rollout } from '../../../src/engine/explain/attentionRollout';

test('attention rollout: one layer, the class token attending to patch 2 only, gives that patch the most', () => {
  // 3 tokens: [class, patch 1, patch 2]; every token attends to patch 2, in two identical heads.
  const layer = Float32Array.from([0, 0, 1, 0, 0, 1, 0, 0, 1]);
  const map = rollout([Float32Array.from([...layer, ...layer])], 3, 1);
  // Class row of ½·A + ½·I: [0.5, 0, 0.5] → patches [0, 0.5].
  assert.deepEqual(Array.from(map), [0, 0.5]);
});

test('attention rollout: two layers multiply, and heads are averaged', () => {
  // Layer 1: each token attends to itself (heads agree); layer 2: head 1 attends to patch 1, head 2 to patch 2.
  const identity = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const toPatch1 = [0, 1, 0, 0, 1, 0, 0, 1, 0];
  const toPatch2 = [0, 0, 1, 0, 0, 1, 0, 0, 1];
  const map = rollout([identity, Float32Array.from([...toPatch1, ...toPatch2])], 3, 1);
  // Layer 2, class row: mean of heads [0, .5, .5] → ½·that + ½·[1, 0, 0] = [.5, .25, .25]; layer 1 is the identity.
  assert.deepEqual(Array.from(map, (value) => Number(value.toFixed(6))), [0.25, 0.25]);
});
