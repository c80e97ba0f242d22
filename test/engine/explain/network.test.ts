// The explanation path through a SwAV model (eval BatchNorm folded into plain convolutions, for cheap pixel
// gradients) must compute exactly what the model's own eval forward pass does.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/engine/runtime/tfjs/backend';
import { swavExplainable } from '../../../src/engine/explain/network';
import { createModel, disposeModel, forward, type ModelSpec } from '../../../src/engine/model/model';
import { createRandom } from '../../../src/engine/util/random';

before(async () => {
  await initBackend('wasm');
});

test('network: the explanation path gives the model’s eval features and scores, and pixel gradients, and frees its folded weights', () => {
  const baseline = tf.memory().numTensors;
  for (const spec of [
    { channels: 1, stemStride: 1, width: 4, blocksPerStage: [1, 2], projectionHiddenDim: 16, projectionDim: 8, prototypes: 5, inputMean: [0.4], inputStd: [0.3] },
    { channels: 3, stemStride: 2, width: 8, blocksPerStage: [1, 1, 1], projectionHiddenDim: 32, projectionDim: 16, prototypes: 7, inputMean: [0.5, 0.4, 0.3], inputStd: [0.2, 0.25, 0.3] },
  ] satisfies ModelSpec[]) {
    const model = createModel(spec, createRandom(3));
    const random = createRandom(4);
    // Running statistics away from their initial 0 / 1, so that folding them matters.
    for (const [name, variable] of model.variables) {
      if (name.endsWith('.runningMean') || name.endsWith('.runningVariance') || name.endsWith('.gamma') || name.endsWith('.beta')) {
        const values = Float32Array.from({ length: variable.size }, () => (name.endsWith('Variance') || name.endsWith('gamma') ? random.uniform(0.5, 2) : random.uniform(-0.5, 0.5)));
        tf.tidy(() => variable.assign(tf.tensor(values, variable.shape)));
      }
    }
    const images = tf.randomUniform([3, 24, 24, spec.channels], 0, 1, 'float32', 5) as tf.Tensor4D;
    const net = swavExplainable(model, 0.1);
    try {
      const reference = forward(model, images, 'eval');
      const ours = tf.tidy(() => net.outputs(net.featureMap(images)));
      for (const [name, a, b] of [['features', ours.features, reference.features], ['scores', ours.scores, reference.scores]] as const) {
        const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
        assert.ok(difference < 1e-4, `${name} differ by ${difference}`);
      }
      const gradient = tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(tf.slice(net.outputs(net.featureMap(x as tf.Tensor4D)).scores, [0, 0], [-1, 1])))(images));
      const values = gradient.dataSync();
      assert.ok(values.every(Number.isFinite) && values.some((value) => value !== 0), 'pixel gradients are finite and not all zero');
      tf.dispose([reference.features, reference.embedding, reference.scores, ours.features, ours.scores, gradient]);
    } finally {
      images.dispose();
      net.dispose();
      disposeModel(model);
    }
  }
  assert.equal(tf.memory().numTensors, baseline);
});
