// Times our wasm conv gradients against the forward conv2d and a whole train step.
// Run: node --import tsx test/engine/backend/convGradients.bench.ts   (not part of `npm test`: it is slow)

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { describeBackend, initBackend } from '../../../../src/engine/runtime/tfjs/backend';

/** The fastest of `repeats` runs: this machine is shared, and the minimum is the least disturbed. */
function timeMs(f: () => tf.Tensor | tf.Tensor[], repeats: number): number {
  tf.dispose(f()); // warm-up: XNNPACK builds its operators on the first call
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    const out = f();
    // dataSync makes sure the work is done before the clock stops.
    (Array.isArray(out) ? out : [out]).forEach((t) => t.dataSync());
    best = Math.min(best, performance.now() - start);
    tf.dispose(out);
  }
  return best;
}

async function main(): Promise<void> {
  // Keep the wasm backend's own Conv2DBackpropInput to compare with: initialise wasm with it first.
  await tf.setBackend('wasm');
  const original = tf.getKernel(tf.Conv2DBackpropInput, 'wasm');
  const info = await initBackend('wasm');
  console.log(`backend: ${describeBackend(info)}`);
  const repeats = Number(process.env.REPEATS ?? 5);

  for (const stride of [1, 2]) {
    const x = tf.randomNormal([64, 32, 32, 32]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 32, 64]) as tf.Tensor4D;
    const dy = tf.conv2d(x, w, stride, 'same');
    const attrs = { strides: stride, pad: 'same', dataFormat: 'NHWC' } as const;
    const forward = timeMs(() => tf.conv2d(x, w, stride, 'same'), repeats);
    const filter = timeMs(
      () => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { ...attrs, filterShape: w.shape } as unknown as tf.NamedAttrMap) as tf.Tensor,
      repeats,
    );
    const input = timeMs(
      () => tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter: w }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor,
      repeats,
    );
    let builtIn = '';
    if (original !== undefined) {
      const ours = tf.getKernel(tf.Conv2DBackpropInput, 'wasm')!;
      tf.unregisterKernel(tf.Conv2DBackpropInput, 'wasm');
      tf.registerKernel(original);
      const ms = timeMs(
        () => tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter: w }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor,
        Math.min(repeats, 2),
      );
      tf.unregisterKernel(tf.Conv2DBackpropInput, 'wasm');
      tf.registerKernel(ours);
      builtIn = `, wasm's own input gradient ${ms.toFixed(1)} ms`;
    }
    console.log(
      `64x32x32 32→64 3x3 stride ${stride}: forward ${forward.toFixed(1)} ms, ` +
        `filter gradient ${filter.toFixed(1)} ms, input gradient ${input.toFixed(1)} ms${builtIn}`,
    );
    tf.dispose([x, w, dy]);
  }

  // A 4-block ResNet (2 stages of 2 basic blocks, width 32) at batch 64, 32x32 px: one SGD step.
  const variables: tf.Variable[] = [];
  const weight = (shape: number[]) => {
    const v = tf.variable(tf.mul(tf.randomNormal(shape), Math.sqrt(2 / (shape[0] * shape[1] * shape[2]))));
    variables.push(v);
    return v as tf.Variable<tf.Rank.R4>;
  };
  const batchNorm = (x: tf.Tensor4D) => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))) as tf.Tensor4D;
  };
  const stem = weight([3, 3, 3, 32]);
  const blocks = [
    { conv1: weight([3, 3, 32, 32]), conv2: weight([3, 3, 32, 32]), stride: 1 },
    { conv1: weight([3, 3, 32, 32]), conv2: weight([3, 3, 32, 32]), stride: 1 },
    { conv1: weight([3, 3, 32, 64]), conv2: weight([3, 3, 64, 64]), stride: 2, projection: weight([1, 1, 32, 64]) },
    { conv1: weight([3, 3, 64, 64]), conv2: weight([3, 3, 64, 64]), stride: 1 },
  ];
  const head = tf.variable(tf.mul(tf.randomNormal([64, 10]), 0.1));
  variables.push(head);
  const images = tf.randomNormal([64, 32, 32, 3]) as tf.Tensor4D;
  const forward = (): tf.Scalar => {
    let h = tf.relu(batchNorm(tf.conv2d(images, stem, 1, 'same')));
    for (const block of blocks) {
      const inner = tf.relu(batchNorm(tf.conv2d(h, block.conv1, block.stride, 'same')));
      const outer = batchNorm(tf.conv2d(inner, block.conv2, 1, 'same'));
      const shortcut = block.projection ? batchNorm(tf.conv2d(h, block.projection, block.stride, 'same')) : h;
      h = tf.relu(tf.add(outer, shortcut)) as tf.Tensor4D;
    }
    const features = tf.mean(h, [1, 2]);
    const embedding = tf.div(features, tf.norm(features, 'euclidean', 1, true));
    return tf.neg(tf.mean(tf.exp(tf.logSoftmax(tf.matMul(embedding, head))))) as tf.Scalar;
  };
  const optimizer = tf.train.sgd(0.01);
  const forwardMs = timeMs(() => tf.tidy(forward), repeats);
  const stepMs = timeMs(() => optimizer.minimize(forward, true) as tf.Scalar, repeats);
  console.log(`4-block ResNet (width 32), batch 64, 32x32: forward ${forwardMs.toFixed(0)} ms, train step ${stepMs.toFixed(0)} ms`);
  tf.dispose([images, ...variables]);
}

void main();
