import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../../src/engine/runtime/tfjs/backend';
import { wasmKernelNames } from '../../../../src/engine/runtime/tfjs/wasmKernels';
import { createRandom, type Random } from '../../../../src/engine/util/random';

type Padding = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
type Shape4 = [number, number, number, number];

interface ConvCase {
  input: Shape4;
  kernel: [number, number];
  outChannels: number;
  strides: [number, number];
  pad: Padding;
}

before(async () => {
  await initBackend('wasm');
});

function randomValues(random: Random, size: number): Float32Array {
  return Float32Array.from({ length: size }, () => random.uniform(-1, 1));
}

/** Runs `f` with `backend` active, then returns to wasm: tfjs has one engine per process. */
async function on<T>(backend: 'cpu' | 'wasm', f: () => T): Promise<T> {
  await tf.setBackend(backend);
  try {
    return f();
  } finally {
    await tf.setBackend('wasm');
  }
}

function filterShape(c: ConvCase): Shape4 {
  return [c.kernel[0], c.kernel[1], c.input[3], c.outChannels];
}

function outputShape(c: ConvCase): Shape4 {
  const info = tf.backend_util.computeConv2DInfo(c.input, filterShape(c), c.strides, 1, c.pad);
  return info.outShape;
}

/** Both gradient kernels, run directly on `backend`, with x, w and dy given as plain arrays. */
async function kernelGradients(
  backend: 'cpu' | 'wasm',
  c: ConvCase,
  x: Float32Array,
  w: Float32Array,
  dy: Float32Array,
): Promise<{ dx: Float32Array; dw: Float32Array }> {
  return on(backend, () =>
    tf.tidy(() => {
      const xTensor = tf.tensor4d(x, c.input);
      const wTensor = tf.tensor4d(w, filterShape(c));
      const dyTensor = tf.tensor4d(dy, outputShape(c));
      const common = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC' };
      const dw = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: xTensor, dy: dyTensor }, { ...common, filterShape: filterShape(c) } as unknown as tf.NamedAttrMap) as tf.Tensor;
      const dx = tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: dyTensor, filter: wTensor }, { ...common, inputShape: c.input } as unknown as tf.NamedAttrMap) as tf.Tensor;
      assert.deepEqual(dw.shape, filterShape(c));
      assert.deepEqual(dx.shape, c.input);
      return { dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
    }),
  );
}

/** Largest difference, relative to the reference's largest magnitude. */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let scale = 1e-3;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  assert.ok(worst <= tolerance * scale, `${label}: max difference ${worst} > ${tolerance} × ${scale}`);
}

// ---------------------------------------------------------------- a float64 reference in plain JS

/** TensorFlow's padding, written out independently of tfjs: 'same' puts the odd pixel at the bottom/right. */
function padBefore(size: number, kernel: number, stride: number, pad: Padding, axis: 1 | 2): { before: number; output: number } {
  if (pad === 'same') {
    const output = Math.ceil(size / stride);
    return { before: Math.floor(Math.max((output - 1) * stride + kernel - size, 0) / 2), output };
  }
  if (pad === 'valid') return { before: 0, output: Math.ceil((size - kernel + 1) / stride) };
  const [before, after] = typeof pad === 'number' ? [pad, pad] : pad[axis];
  return { before, output: Math.floor((size + before + after - kernel) / stride) + 1 };
}

function convolve64(c: ConvCase, x: Float64Array, w: Float64Array): Float64Array {
  const [batch, height, width, inChannels] = c.input;
  const [kernelHeight, kernelWidth] = c.kernel;
  const rows = padBefore(height, kernelHeight, c.strides[0], c.pad, 1);
  const columns = padBefore(width, kernelWidth, c.strides[1], c.pad, 2);
  const y = new Float64Array(batch * rows.output * columns.output * c.outChannels);
  for (let n = 0; n < batch; n++)
    for (let oy = 0; oy < rows.output; oy++)
      for (let ox = 0; ox < columns.output; ox++)
        for (let ky = 0; ky < kernelHeight; ky++) {
          const iy = oy * c.strides[0] + ky - rows.before;
          if (iy < 0 || iy >= height) continue;
          for (let kx = 0; kx < kernelWidth; kx++) {
            const ix = ox * c.strides[1] + kx - columns.before;
            if (ix < 0 || ix >= width) continue;
            for (let ci = 0; ci < inChannels; ci++) {
              const xValue = x[((n * height + iy) * width + ix) * inChannels + ci];
              for (let co = 0; co < c.outChannels; co++) {
                y[((n * rows.output + oy) * columns.output + ox) * c.outChannels + co] +=
                  xValue * w[((ky * kernelWidth + kx) * inChannels + ci) * c.outChannels + co];
              }
            }
          }
        }
  return y;
}

/** ∂(Σ y·dy)/∂v by central differences in float64. */
function numericalGradient(loss: (v: Float64Array) => number, v: Float64Array): Float64Array {
  const step = 1e-3;
  const gradient = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const original = v[i];
    v[i] = original + step;
    const up = loss(v);
    v[i] = original - step;
    const down = loss(v);
    v[i] = original;
    gradient[i] = (up - down) / (2 * step);
  }
  return gradient;
}

function dot(a: Float64Array, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

// ---------------------------------------------------------------- cases

const randomCases: ConvCase[] = [];
{
  const random = createRandom(7);
  const sizes: [number, number][] = [[7, 5], [8, 8], [6, 9], [5, 7], [4, 4]];
  for (const stride of [1, 2])
    for (const pad of ['same', 'valid'] as const)
      for (const kernel of [1, 3])
        for (const [height, width] of sizes) {
          if (pad === 'valid' && (height < kernel || width < kernel)) continue;
          randomCases.push({
            input: [1 + random.int(3), height, width, 1 + random.int(5)],
            kernel: [kernel, kernel],
            outChannels: 1 + random.int(6),
            strides: [stride, stride],
            pad,
          });
        }
  // Odd shapes: rectangular kernels and strides, 2x2 kernels, stride 3, numeric and explicit padding.
  randomCases.push(
    { input: [2, 7, 5, 3], kernel: [3, 2], outChannels: 4, strides: [2, 1], pad: 'same' },
    { input: [2, 9, 6, 2], kernel: [2, 2], outChannels: 3, strides: [2, 2], pad: 'same' },
    { input: [2, 9, 8, 2], kernel: [3, 3], outChannels: 3, strides: [3, 3], pad: 'same' },
    { input: [2, 10, 7, 2], kernel: [5, 5], outChannels: 3, strides: [2, 2], pad: 'same' },
    { input: [2, 7, 6, 3], kernel: [3, 3], outChannels: 2, strides: [2, 2], pad: 1 },
    { input: [2, 7, 6, 3], kernel: [3, 3], outChannels: 2, strides: [1, 1], pad: [[0, 0], [2, 0], [0, 1], [0, 0]] },
    { input: [2, 8, 7, 3], kernel: [3, 3], outChannels: 2, strides: [2, 2], pad: [[0, 0], [0, 2], [1, 0], [0, 0]] },
  );
}

function describe(c: ConvCase): string {
  return `x ${c.input.join('x')} k ${c.kernel.join('x')}→${c.outChannels} s ${c.strides.join(',')} pad ${JSON.stringify(c.pad)}`;
}

test('wasm conv gradient kernels replace the backend’s (and the cpu backend keeps its own)', () => {
  assert.ok(wasmKernelNames.includes('Conv2DBackpropFilter') && wasmKernelNames.includes('Conv2DBackpropInput'));
  const cpuFilter = tf.getKernel(tf.Conv2DBackpropFilter, 'cpu');
  const wasmFilter = tf.getKernel(tf.Conv2DBackpropFilter, 'wasm');
  assert.ok(cpuFilter !== undefined && wasmFilter !== undefined);
  assert.notEqual(cpuFilter.kernelFunc, wasmFilter.kernelFunc);
});

test(`filter and input gradients match the cpu backend on ${randomCases.length} cases`, async () => {
  const random = createRandom(11);
  for (const c of randomCases) {
    const x = randomValues(random, tf.util.sizeFromShape(c.input));
    const w = randomValues(random, tf.util.sizeFromShape(filterShape(c)));
    const dy = randomValues(random, tf.util.sizeFromShape(outputShape(c)));
    const expected = await kernelGradients('cpu', c, x, w, dy);
    const actual = await kernelGradients('wasm', c, x, w, dy);
    assertClose(actual.dw, expected.dw, 1e-4, `dw ${describe(c)}`);
    assertClose(actual.dx, expected.dx, 1e-4, `dx ${describe(c)}`);
  }
});

test('filter and input gradients match float64 finite differences', async () => {
  const random = createRandom(5);
  const cases: ConvCase[] = [
    { input: [2, 7, 5, 2], kernel: [3, 3], outChannels: 3, strides: [2, 2], pad: 'same' },
    { input: [2, 8, 6, 2], kernel: [3, 3], outChannels: 2, strides: [2, 2], pad: 'same' },
    { input: [2, 7, 5, 2], kernel: [3, 3], outChannels: 2, strides: [1, 1], pad: 'same' },
    { input: [3, 8, 7, 2], kernel: [3, 3], outChannels: 2, strides: [2, 2], pad: 'valid' },
    { input: [2, 7, 6, 3], kernel: [1, 1], outChannels: 2, strides: [2, 2], pad: 'same' },
    { input: [2, 5, 5, 1], kernel: [3, 3], outChannels: 1, strides: [1, 1], pad: 'valid' },
  ];
  for (const c of cases) {
    const x = randomValues(random, tf.util.sizeFromShape(c.input));
    const w = randomValues(random, tf.util.sizeFromShape(filterShape(c)));
    const dy = randomValues(random, tf.util.sizeFromShape(outputShape(c)));
    const x64 = Float64Array.from(x);
    const w64 = Float64Array.from(w);
    // The reference's forward pass must agree with tfjs's before its gradients mean anything.
    const forward = await on('wasm', () => tf.tidy(() => tf.conv2d(tf.tensor4d(x, c.input), tf.tensor4d(w, filterShape(c)), c.strides, c.pad).dataSync()));
    assertClose(forward, convolve64(c, x64, w64), 1e-5, `forward ${describe(c)}`);

    const dxNumerical = numericalGradient((v) => dot(convolve64(c, v, w64), dy), x64);
    const dwNumerical = numericalGradient((v) => dot(convolve64(c, x64, v), dy), w64);
    const actual = await kernelGradients('wasm', c, x, w, dy);
    assertClose(actual.dx, dxNumerical, 1e-4, `dx ${describe(c)}`);
    assertClose(actual.dw, dwNumerical, 1e-4, `dw ${describe(c)}`);
  }
});

test('tf.grads and tf.variableGrads through conv2d on wasm match cpu', async () => {
  const random = createRandom(3);
  const xValues = randomValues(random, 2 * 8 * 7 * 3);
  const wValues = randomValues(random, 3 * 3 * 3 * 4);
  const pValues = randomValues(random, 1 * 1 * 4 * 5);
  // conv 3x3 stride 2 'same' on 8x7 (padding 0 above, 1 below; 1 either side), then a 1x1 stride-2 conv, squared so the gradient depends on x.
  const loss = (x: tf.Tensor4D, w: tf.Tensor4D, p: tf.Tensor4D): tf.Scalar =>
    tf.sum(tf.square(tf.conv2d(tf.relu(tf.conv2d(x, w, 2, 'same')), p, 2, 'same')));
  const gradients = (backend: 'cpu' | 'wasm') =>
    on(backend, () =>
      tf.tidy(() => {
        const inputs = [tf.tensor4d(xValues, [2, 8, 7, 3]), tf.tensor4d(wValues, [3, 3, 3, 4]), tf.tensor4d(pValues, [1, 1, 4, 5])];
        const grads = tf.grads((x, w, p) => loss(x as tf.Tensor4D, w as tf.Tensor4D, p as tf.Tensor4D))(inputs);
        return grads.map((g) => g.dataSync());
      }),
    );
  const expected = await gradients('cpu');
  const actual = await gradients('wasm');
  ['x', 'w', 'p'].forEach((name, i) => assertClose(actual[i], expected[i], 1e-4, `d${name}`));

  const w = tf.variable(tf.tensor4d(wValues, [3, 3, 3, 4]));
  const x = tf.tensor4d(xValues, [2, 8, 7, 3]);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(tf.conv2d(x, w, 2, 'same'))), [w]);
  const viaTape = tf.grad((filter: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x, filter as tf.Tensor4D, 2, 'same'))))(w);
  assertClose(grads[w.name].dataSync(), viaTape.dataSync(), 1e-6, 'variableGrads');
  assert.ok(Number.isFinite(value.dataSync()[0]));
  tf.dispose([w, x, value, grads[w.name], viaTape]);
});

test('gradients leak no tensors and no wasm buffers', () => {
  const x = tf.randomNormal([4, 9, 9, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.variable(tf.randomNormal([3, 3, 3, 8], 0, 1, 'float32', 2));
  const p = tf.variable(tf.randomNormal([1, 1, 8, 8], 0, 1, 'float32', 3));
  const step = () => {
    const { value, grads } = tf.variableGrads(() => {
      const hidden = tf.relu(tf.conv2d(x, w as tf.Tensor4D, 2, 'same'));
      return tf.mean(tf.square(tf.add(hidden, tf.conv2d(hidden, p as tf.Tensor4D, 1, 'same'))));
    });
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  const tensors = tf.memory().numTensors;
  const buffers = tf.engine().backend.numDataIds();
  for (let i = 0; i < 5; i++) step();
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(tf.engine().backend.numDataIds(), buffers);
  tf.dispose([x, w, p]);
});

test('gather’s gradient (UnsortedSegmentSum) works on wasm', async () => {
  const values = [1, 2, 3, 4, 5, 6];
  const gradient = (backend: 'cpu' | 'wasm') =>
    on(backend, () =>
      tf.tidy(() => {
        const indices = tf.tensor1d([2, 0, 2, 5], 'int32');
        const weights = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8], [4, 2]);
        return tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.gather(tf.reshape(v, [6, 1]), indices), weights)))(tf.tensor1d(values)).dataSync();
      }),
    );
  const expected = await gradient('cpu');
  assert.deepEqual(Array.from(expected), [3 + 4, 0, 1 + 2 + 5 + 6, 0, 0, 7 + 8]);
  assert.deepEqual(Array.from(await gradient('wasm')), Array.from(expected));
});

test('a small residual conv net trains on wasm: loss falls', () => {
  const random = createRandom(1);
  const images = tf.tensor4d(randomValues(random, 8 * 12 * 12 * 3), [8, 12, 12, 3]);
  const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32'), 4);
  const weight = (shape: number[], seed: number) =>
    tf.variable(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', seed), Math.sqrt(2 / (shape[0] * shape[1] * shape[2]))));
  const stem = weight([3, 3, 3, 8], 1);
  const down = weight([3, 3, 8, 16], 2);
  const shortcut = weight([1, 1, 8, 16], 3);
  const head = tf.variable(tf.mul(tf.randomNormal([16, 4], 0, 1, 'float32', 4), 0.3));
  const batchNorm = (x: tf.Tensor4D): tf.Tensor4D => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5)));
  };
  const loss = (): tf.Scalar => {
    const hidden = tf.relu(batchNorm(tf.conv2d(images, stem as tf.Tensor4D, 1, 'same')));
    const block = tf.relu(tf.add(batchNorm(tf.conv2d(hidden, down as tf.Tensor4D, 2, 'same')), tf.conv2d(hidden, shortcut as tf.Tensor4D, 2, 'same'))) as tf.Tensor4D;
    const pooled = tf.mean(tf.maxPool(block, 2, 1, 'same'), [1, 2]);
    return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(tf.matMul(pooled, head))), 1))) as tf.Scalar;
  };
  const optimizer = tf.train.adam(0.05);
  const losses: number[] = [];
  for (let step = 0; step < 8; step++) {
    const value = optimizer.minimize(loss, true) as tf.Scalar;
    losses.push(value.dataSync()[0]);
    value.dispose();
  }
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses[losses.length - 1] < 0.5 * losses[0], `loss ${losses.map((l) => l.toFixed(3)).join(' → ')}`);
  optimizer.dispose();
  tf.dispose([images, labels, stem, down, shortcut, head]);
});
