// SmoothGrad (Smilkov et al. 2017): gradients averaged over noisy copies of the image, all in one batch.
import { createRandom, type Random } from '../util/random';
import type { Explainer } from './explainer';
import { averagedGradientMaps } from './gradients';
import { targetValue } from './target';

/** `count` copies of `pixels` plus N(0, σ) noise, σ = share · (max − min) of the image. */
function noisyCopies(pixels: Float32Array, count: number, share: number, random: Random): Float32Array {
  let low = Infinity;
  let high = -Infinity;
  for (const value of pixels) [low, high] = [Math.min(low, value), Math.max(high, value)];
  const sigma = share * Math.max(high - low, 1e-3);
  return Float32Array.from({ length: count * pixels.length }, (_, i) => pixels[i % pixels.length] + (sigma > 0 ? sigma * random.normal() : 0));
}

export const smoothGrad: Explainer = {
  method: 'smoothgrad',
  description: 'SmoothGrad: input × gradient averaged over noisy copies of the image',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options, seed }) {
    const count = options.smoothGradSamples;
    const random = createRandom(seed);
    const copies = noisyCopies(image.pixels, count, options.smoothGradNoise, random);
    const pairCopies = target.kind === 'similarity' ? noisyCopies(target.pair, count, options.smoothGradNoise, random) : undefined;
    const explanation = await averagedGradientMaps(net, image, target, copies, pairCopies, count);
    // The copies are noisy: the score is the clean image's.
    return { ...explanation, score: await targetValue(net, image, target) };
  },
};
