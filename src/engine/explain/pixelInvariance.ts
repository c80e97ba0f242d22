// Pixel invariance (the seed's linear surrogate): fit a linear model to the target's value on many
// colour-augmented views of the image, each with a random rectangle erased; its per-pixel weights say which
// pixels the target depends on and which it is invariant to. The seed regresses on the views' pixel values,
// but colour jitter moves every pixel together, which makes those collinear (a weight on the ignored half of
// an image explains a brightness change as well as one on the seen half); regressing on which pixels each view
// kept separates the two, and the jitter's own draws enter as nuisance covariates, regressed out of both sides
// first (Frisch–Waugh), so that the colour changes' large effect does not drown the erasures'. The fit is ridge
// regression in closed form, on masks shrunk to at most 12 px.
import type { DeviceKind } from '../../protocol/options';
import { createRandom, type Random } from '../util/random';
import { normalizeArray, resizeMaps, type ExplainableModel, type Explainer, type Pixels } from './explainer';
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

/** Y − Z·B with B = (ZᵀZ + εI)⁻¹ Zᵀ Y: the part of Y's columns [n, columns] that Z's [n, k] do not explain. */
function residual(z: Float64Array, k: number, y: Float64Array, columns: number): Float64Array {
  const n = z.length / k;
  const normal = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) for (let row = 0; row < n; row++) normal[i * k + j] += z[row * k + i] * z[row * k + j];
  const out = Float64Array.from(y);
  for (let column = 0; column < columns; column++) {
    const projected = new Float64Array(k);
    for (let i = 0; i < k; i++) for (let row = 0; row < n; row++) projected[i] += z[row * k + i] * y[row * columns + column];
    const b = solveRidge(normal, k, projected, 1e-6);
    for (let row = 0; row < n; row++) {
      let fitted = 0;
      for (let i = 0; i < k; i++) fitted += z[row * k + i] * b[i];
      out[row * columns + column] -= fitted;
    }
  }
  return out;
}

/** relu of the surrogate's weights on "this pixel was kept", upsampled and normalised. */
async function surrogateMap(net: ExplainableModel, image: Pixels, reference: Reference, count: number, batchSize: number, random: Random): Promise<{ map: Float32Array; device: DeviceKind }> {
  const { sizePx, channels } = image;
  const erased = erasingMasks(count, sizePx, random);
  const jitter = colourJitter(image, count, random);
  const views = jitter.views.map((value, i) => value * (1 - erased[Math.floor(i / channels)]));
  const { values: labels, device } = await scoreAgainst(net, views, count, sizePx, reference, batchSize);
  const surrogatePx = Math.min(sizePx, surrogateSizePx);
  const cells = surrogatePx * surrogatePx;
  const kept = resizeMaps(erased.map((value) => 1 - value), count, sizePx, sizePx, surrogatePx);
  // Nuisance covariates: a constant and the jitter's draws.
  const nuisance = new Float64Array(count * 5);
  for (let row = 0; row < count; row++) {
    nuisance[row * 5] = 1;
    for (let f = 0; f < 4; f++) nuisance[row * 5 + 1 + f] = jitter.factors[row * 4 + f];
  }
  const design = residual(nuisance, 5, Float64Array.from(kept), cells);
  const residualLabels = residual(nuisance, 5, Float64Array.from(labels), 1);
  // Ridge in its dual form, w = Xᵀ (XXᵀ + λI)⁻¹ y: `count` unknowns instead of one per pixel.
  const gram = new Float64Array(count * count);
  for (let i = 0; i < count; i++) {
    for (let j = 0; j <= i; j++) {
      let dot = 0;
      for (let cell = 0; cell < cells; cell++) dot += design[i * cells + cell] * design[j * cells + cell];
      gram[i * count + j] = gram[j * count + i] = dot;
    }
  }
  let trace = 0;
  for (let i = 0; i < count; i++) trace += gram[i * count + i];
  const alpha = solveRidge(gram, count, residualLabels, ridge * Math.max(trace / count, 1e-12));
  const weights = new Float32Array(cells);
  for (let cell = 0; cell < cells; cell++) {
    let sum = 0;
    for (let row = 0; row < count; row++) sum += alpha[row] * design[row * cells + cell];
    weights[cell] = Math.max(0, sum);
  }
  return { map: normalizeArray(resizeMaps(weights, 1, surrogatePx, surrogatePx, sizePx)), device };
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
      const { map: heatmap, device } = await surrogateMap(net, image, target, count, options.batchSize, random);
      return { heatmap, score: await targetValue(net, image, target), device };
    }
    const pair = { ...image, pixels: target.pair };
    const imageFeatures = await featuresOf(net, image);
    const pairFeatures = await featuresOf(net, pair);
    const { map: heatmap, device } = await surrogateMap(net, image, { kind: 'features', features: pairFeatures }, count, options.batchSize, random);
    const { map: pairHeatmap } = await surrogateMap(net, pair, { kind: 'features', features: imageFeatures }, count, options.batchSize, random);
    return { heatmap, pairHeatmap, score: await targetValue(net, image, target), device };
  },
};
