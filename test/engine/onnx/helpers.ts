// Shared by the ONNX tests: fixture paths, seeded images, NHWC ↔ NCHW, a max-difference check, and a plain-JS
// forward pass of the engine's network to check the graphs against.
import assert from 'node:assert/strict';
import path from 'node:path';
import type { ModelSpec } from '../../../src/engine/model/model';
import { createRandom } from '../../../src/engine/util/random';

export const fixtures = path.resolve(__dirname, '..', '..', 'fixtures', 'onnx');

/** Seeded NHWC pixels in [0, 1]. */
export function randomPixels(count: number, sizePx: number, channels: number, seed = 1): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length: count * sizePx * sizePx * channels }, () => random.next());
}

export function toNchw(pixels: Float32Array, count: number, sizePx: number, channels: number): Float32Array {
  const out = new Float32Array(pixels.length);
  const plane = sizePx * sizePx;
  for (let n = 0; n < count; n++) for (let p = 0; p < plane; p++) for (let c = 0; c < channels; c++) out[(n * channels + c) * plane + p] = pixels[(n * plane + p) * channels + c];
  return out;
}

export function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, `lengths differ: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Asserts the two agree to `tolerance` and that the values are not all zero (a test that can fail). */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  const difference = maxDifference(actual, expected);
  assert.ok(difference <= tolerance, `${what}: max difference ${difference} > ${tolerance}`);
  assert.ok(Array.from(expected).some((v) => Math.abs(v) > 1e-3), `${what}: reference values are all ~0`);
}

/** Weights by name, as the parameter store and the graph builders hold them. */
export type ReferenceWeights = Map<string, { shape: number[]; values: ArrayLike<number> }>;

/**
 * The engine's network in eval mode, written out in plain JS loops from its definition rather than from
 * model/layout.ts, so that it can catch a mistake there: NHWC images in [0, 1] are normalised per channel; a
 * resnet has a stem (3×3 conv at `stemStride`, BatchNorm, ReLU) then basic blocks, relu(bn(conv(relu(bn(conv(x)))))
 * + shortcut), the first block of every stage after the first at stride 2, the shortcut a 1×1 conv + BatchNorm
 * where the shape changes; a plain network has no stem and no shortcuts. Convolutions pad as TensorFlow's
 * "same" (the odd pixel at the end), BatchNorm uses the running statistics with ε = 1e-5 (not folded). The head:
 * fc1 → BatchNorm → ReLU → fc2 → L2 normalisation, the scores its cosines with the unit prototypes.
 */
export function referenceForward(spec: ModelSpec, weights: ReferenceWeights, pixels: Float32Array, count: number, sizePx: number): { features: Float32Array; embedding: Float32Array; scores: Float32Array } {
  const get = (name: string) => {
    const found = weights.get(name);
    if (!found) throw new Error(`reference: no weight ${name}`);
    return found;
  };
  const batchNorm = (values: Float32Array, channels: number, name: string) => {
    const [gamma, beta, mean, variance] = ['gamma', 'beta', 'runningMean', 'runningVariance'].map((suffix) => get(`${name}.${suffix}`).values);
    return values.map((v, i) => {
      const c = i % channels;
      return ((v - mean[c]) / Math.sqrt(variance[c] + 1e-5)) * gamma[c] + beta[c];
    });
  };
  const relu = (values: Float32Array) => values.map((v) => Math.max(0, v));
  type Map4 = { values: Float32Array; size: number; channels: number };
  const conv = (x: Map4, name: string, stride: number): Map4 => {
    const { shape, values: filter } = get(name);
    const [kh, kw, inChannels, outChannels] = shape;
    assert.equal(inChannels, x.channels, `${name}'s input channels`);
    const size = Math.ceil(x.size / stride);
    const begin = Math.floor(Math.max((size - 1) * stride + kh - x.size, 0) / 2);
    const out = new Float32Array(count * size * size * outChannels);
    for (let n = 0; n < count; n++)
      for (let oy = 0; oy < size; oy++)
        for (let ox = 0; ox < size; ox++)
          for (let o = 0; o < outChannels; o++) {
            let sum = 0;
            for (let dy = 0; dy < kh; dy++) {
              const y = oy * stride + dy - begin;
              if (y < 0 || y >= x.size) continue;
              for (let dx = 0; dx < kw; dx++) {
                const xx = ox * stride + dx - begin;
                if (xx < 0 || xx >= x.size) continue;
                for (let c = 0; c < inChannels; c++) sum += x.values[((n * x.size + y) * x.size + xx) * inChannels + c] * filter[((dy * kw + dx) * inChannels + c) * outChannels + o];
              }
            }
            out[((n * size + oy) * size + ox) * outChannels + o] = sum;
          }
    return { values: out, size, channels: outChannels };
  };
  const convBn = (x: Map4, name: string, bn: string, stride: number): Map4 => {
    const y = conv(x, name, stride);
    return { ...y, values: batchNorm(y.values, y.channels, bn) };
  };
  const dense = (x: Float32Array, name: string, withBias = true) => {
    const { shape, values: w } = get(`${name}.weight`);
    const [inDim, outDim] = shape;
    const bias = withBias ? get(`${name}.bias`).values : undefined;
    const out = new Float32Array(count * outDim);
    for (let n = 0; n < count; n++)
      for (let o = 0; o < outDim; o++) {
        let sum = bias ? bias[o] : 0;
        for (let i = 0; i < inDim; i++) sum += x[n * inDim + i] * w[i * outDim + o];
        out[n * outDim + o] = sum;
      }
    return out;
  };

  const normalised = pixels.map((v, i) => (v - spec.inputMean[i % spec.channels]) / spec.inputStd[i % spec.channels]);
  let x: Map4 = { values: normalised, size: sizePx, channels: spec.channels };
  const plain = spec.architecture === 'plain';
  if (!plain) {
    const stem = convBn(x, 'stem.conv', 'stem.bn', spec.stemStride);
    x = { ...stem, values: relu(stem.values) };
  }
  spec.blocksPerStage.forEach((blocks, stage) => {
    for (let block = 0; block < blocks; block++) {
      const prefix = `stage${stage}.block${block}`;
      const stride = stage > 0 && block === 0 ? 2 : 1;
      const first = convBn(x, `${prefix}.conv1`, `${prefix}.bn1`, stride);
      const second = convBn({ ...first, values: relu(first.values) }, `${prefix}.conv2`, `${prefix}.bn2`, 1);
      let shortcut: Float32Array | undefined;
      if (!plain) shortcut = weights.has(`${prefix}.shortcut.conv`) ? convBn(x, `${prefix}.shortcut.conv`, `${prefix}.shortcut.bn`, stride).values : x.values;
      x = { ...second, values: relu(shortcut ? second.values.map((v, i) => v + shortcut![i]) : second.values) };
    }
  });
  // Global average pooling: the features [N, F].
  const positions = x.size * x.size;
  const features = new Float32Array(count * x.channels);
  for (let n = 0; n < count; n++) for (let p = 0; p < positions; p++) for (let c = 0; c < x.channels; c++) features[n * x.channels + c] += x.values[(n * positions + p) * x.channels + c] / positions;
  const { embedding, scores } = referenceHead(spec, weights, features, count);
  return { features, embedding, scores };
}

/** The head of referenceForward on features [N, F]: the unit embeddings [N, D] and the prototype scores [N, K]. */
export function referenceHead(spec: Pick<ModelSpec, 'projectionHiddenDim' | 'projectionDim' | 'prototypes'>, weights: ReferenceWeights, features: Float32Array, count: number): { embedding: Float32Array; scores: Float32Array } {
  const get = (name: string) => weights.get(name)!.values;
  const matrix = (x: Float32Array, name: string, inDim: number, outDim: number) => {
    const w = get(`${name}.weight`);
    const b = get(`${name}.bias`);
    return Float32Array.from({ length: count * outDim }, (_, i) => {
      const n = Math.floor(i / outDim);
      const o = i % outDim;
      let sum = b[o];
      for (let k = 0; k < inDim; k++) sum += x[n * inDim + k] * w[k * outDim + o];
      return sum;
    });
  };
  const featureDim = features.length / count;
  const hidden = spec.projectionHiddenDim;
  const [gamma, beta, mean, variance] = ['gamma', 'beta', 'runningMean', 'runningVariance'].map((suffix) => get(`head.bn.${suffix}`));
  const h = matrix(features, 'head.fc1', featureDim, hidden).map((v, i) => {
    const c = i % hidden;
    return Math.max(0, ((v - mean[c]) / Math.sqrt(variance[c] + 1e-5)) * gamma[c] + beta[c]);
  });
  const dims = spec.projectionDim;
  const embedding = matrix(h, 'head.fc2', hidden, dims);
  for (let n = 0; n < count; n++) {
    const row = embedding.subarray(n * dims, (n + 1) * dims);
    const norm = Math.sqrt(row.reduce((sum, v) => sum + v * v, 0));
    for (let d = 0; d < dims; d++) row[d] /= Math.max(norm, 1e-12);
  }
  const prototypes = get('prototypes');
  const k = spec.prototypes;
  const scores = Float32Array.from({ length: count * k }, (_, i) => {
    const n = Math.floor(i / k);
    const p = i % k;
    let sum = 0;
    for (let d = 0; d < dims; d++) sum += embedding[n * dims + d] * prototypes[p * dims + d];
    return sum;
  });
  return { embedding, scores };
}
