import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convLayers, forwardConvMacs, networkLayout } from '../../../src/engine/model/layout';

const base = { channels: 1, stemStride: 1 as const, width: 32, blocksPerStage: [1, 1, 1, 1] };

test('plain layout is the reference network: conv-conv blocks from the image, same MACs as swav_torch.py', () => {
  const layout = networkLayout({ ...base, architecture: 'plain' });
  assert.equal(layout.stem, undefined);
  assert.ok(layout.blocks.every((block) => block.shortcut.kind === 'none'));
  assert.deepEqual(convLayers(layout).map((l) => `${l.inChannels}>${l.outChannels}/s${l.stride}`), ['1>32/s1', '32>32/s1', '32>64/s2', '64>64/s1', '64>128/s2', '128>128/s1', '128>256/s2', '256>256/s1']);
  const conv = (size: number, a: number, b: number) => size * size * 9 * a * b;
  const reference = conv(28, 1, 32) + conv(28, 32, 32) + conv(14, 32, 64) + conv(14, 64, 64) + conv(7, 64, 128) + conv(7, 128, 128) + conv(4, 128, 256) + conv(4, 256, 256);
  assert.equal(forwardConvMacs(layout, 28), reference);
  assert.equal(layout.featureChannels, 256);
});

test('resnet layout: a stem, identity shortcuts where shapes match, 1×1 projections where they do not; old specs are resnet', () => {
  const layout = networkLayout(base);
  assert.equal(layout.stem?.conv, 'stem.conv');
  assert.deepEqual(layout.blocks.map((b) => b.shortcut.kind), ['identity', 'projection', 'projection', 'projection']);
  const projection = layout.blocks[1].shortcut;
  assert.ok(projection.kind === 'projection' && projection.layer.kernel === 1 && projection.layer.stride === 2);
  assert.ok(forwardConvMacs(layout, 28) > forwardConvMacs(networkLayout({ ...base, architecture: 'plain' }), 28));
});
