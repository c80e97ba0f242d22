// Pixel invariance (the seed's linear surrogate): fit a linear model to the target's value on many
// colour-augmented views of the image, each with a random rectangle erased; its per-pixel weights say which
// pixels the target depends on and which it is invariant to. The seed regresses on the views' pixel values,
// but colour jitter moves every pixel together, which makes those collinear (a weight on the ignored half of
// an image explains a brightness change as well as one on the seen half); regressing on which pixels each view
// kept separates the two, and the jitter's own draws enter as nuisance covariates, regressed out of both sides
// first (Frisch–Waugh), so that the colour changes' large effect does not drown the erasures'. The fit is ridge
// regression in closed form, on masks shrunk to at most 12 px.
import * as tf from '@tensorflow/tfjs-core';
import { createRandom, type Random } from '../util/random';
import { normalizeArray, upsampleMaps, type ExplainableModel, type Explainer } from './explainer';
import { featuresOf, scoreAgainst, targetValue, type Reference } from './target';
import { colourJitter, erasingMasks } from './views';

const surrogateSizePx = 12;
// Ridge strength relative to the mean squared norm of a (centred) mask.
const ridge = 0.1;

/** Solves (A + λI)x = b for a symmetric positive-semidefinite n × n A (Cholesky). */
export function solveRidge(matrix: Float64Array, n: number, b: Float64Array, lambda: number): Float64Array {
  const lower = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = matrix[i * n + j] + (i === j ? lambda : 0);
      for (let k = 0; k < j; k++) sum -= lower[i * n + k] * lower[j * n + k];
      lower[i * n + j] = i === j ? Math.sqrt(Math.max(sum, 1e-12)) : sum / lower[j * n + j];
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = b[i];
    for (let k = 0; k < i; k++) sum -= lower[i * n + k] * y[k];
    y[i] = sum / lower[i * n + i];
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let sum = y[i];
    for (let k = i + 1; k < n; k++) sum -= lower[k * n + i] * x[k];
    x[i] = sum / lower[i * n + i];
  }
  return x;
}

/** B = (ZᵀZ + εI)⁻¹ Zᵀ Y for a thin Z [n, k]: the least-squares fit of Y's columns on Z's. */
function leastSquares(z: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D {
  const k = z.shape[1];
  const columns = y.shape[1];
  const normal = Float64Array.from(tf.matMul(z, z, true, false).dataSync());
  const projected = tf.matMul(z, y, true, false).dataSync();
  const solution = new Float32Array(k * columns);
  for (let column = 0; column < columns; column++) {
    const x = solveRidge(normal, k, Float64Array.from({ length: k }, (_, row) => projected[row * columns + column]), 1e-6);
    x.forEach((value, row) => (solution[row * columns + column] = value));
  }
  return tf.tensor2d(solution, [k, columns]);
}

/** relu of the surrogate's weights on "this pixel was kept", upsampled and normalised. */
function surrogateMap(net: ExplainableModel, image: tf.Tensor4D, reference: Reference, count: number, batchSize: number, random: Random): Float32Array {
  const sizePx = image.shape[1];
  const erased = erasingMasks(count, sizePx, random);
  const jitter = colourJitter(image, count, random);
  const views = tf.tidy(() => tf.mul(jitter.views, tf.sub(1, tf.tensor4d(erased, [count, sizePx, sizePx, 1]))) as tf.Tensor4D);
  const labels = scoreAgainst(net, views, reference, batchSize);
  tf.dispose([views, jitter.views]);
  const surrogatePx = Math.min(sizePx, surrogateSizePx);
  const map = tf.tidy(() => {
    const kept = tf.reshape(tf.image.resizeBilinear(tf.sub(1, tf.tensor4d(erased, [count, sizePx, sizePx, 1])) as tf.Tensor4D, [surrogatePx, surrogatePx], false, true), [count, -1]) as tf.Tensor2D;
    // Nuisance covariates: a constant and the jitter's draws.
    const nuisance = tf.concat([tf.ones([count, 1]), tf.tensor2d(jitter.factors, [count, 4])], 1) as tf.Tensor2D;
    const residual = (values: tf.Tensor2D) => tf.sub(values, tf.matMul(nuisance, leastSquares(nuisance, values)));
    const design = residual(kept);
    const residualLabels = residual(tf.tensor2d(labels, [count, 1]));
    // Ridge in its dual form, w = Xᵀ (XXᵀ + λI)⁻¹ y: `count` unknowns instead of one per pixel.
    const gram = Float64Array.from(tf.matMul(design, design, false, true).dataSync());
    const trace = gram.reduce((sum, value, index) => (index % (count + 1) === 0 ? sum + value : sum), 0);
    const alpha = solveRidge(gram, count, Float64Array.from(residualLabels.dataSync()), ridge * Math.max(trace / count, 1e-12));
    const weights = tf.matMul(tf.tensor2d(Float32Array.from(alpha), [1, count]), design);
    return tf.reshape(upsampleMaps(tf.relu(tf.reshape(weights, [1, surrogatePx, surrogatePx, 1])) as tf.Tensor4D, sizePx), [-1]);
  });
  const values = normalizeArray(map.dataSync() as Float32Array);
  map.dispose();
  return values;
}

export const pixelInvariance: Explainer = {
  method: 'pixel-invariance',
  description: 'Pixel invariance: a linear surrogate of the target on colour-augmented views with random erasures; its weights on each kept pixel',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options, seed }) {
    const random = createRandom(seed);
    const count = options.pixelInvarianceViews;
    if (target.kind === 'prototype') {
      const heatmap = surrogateMap(net, image, target, count, options.batchSize, random);
      return { heatmap, score: targetValue(net, image, target) };
    }
    const imageFeatures = featuresOf(net, image);
    const pairFeatures = featuresOf(net, target.pair);
    try {
      const heatmap = surrogateMap(net, image, { kind: 'features', features: pairFeatures }, count, options.batchSize, random);
      const pairHeatmap = surrogateMap(net, target.pair, { kind: 'features', features: imageFeatures }, count, options.batchSize, random);
      return { heatmap, pairHeatmap, score: targetValue(net, image, target) };
    } finally {
      tf.dispose([imageFeatures, pairFeatures]);
    }
  },
};
