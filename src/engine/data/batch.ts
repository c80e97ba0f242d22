// Turns images of an ImageSet into float32 [N,S,S,C] values in [0,1], the input the crops and the model expect.

import type { ImageSet } from './decode';

/** The images at `indices`, NHWC values in [0, 1]. RangeError for an index outside the set. */
export function batchPixels(imageSet: Pick<ImageSet, 'pixels' | 'imageSizePx' | 'channels'>, indices: ArrayLike<number>): Float32Array {
  const { imageSizePx, channels, pixels } = imageSet;
  const stride = imageSizePx * imageSizePx * channels;
  const imageCount = pixels.length / stride;
  const values = new Float32Array(indices.length * stride);
  for (let slot = 0; slot < indices.length; slot++) {
    const index = indices[slot];
    if (!Number.isInteger(index) || index < 0 || index >= imageCount) {
      throw new RangeError(`Image index ${index} is outside the image set (0..${imageCount - 1}).`);
    }
    const source = pixels.subarray(index * stride, (index + 1) * stride);
    const offset = slot * stride;
    for (let i = 0; i < stride; i++) values[offset + i] = source[i] / 255;
  }
  return values;
}

/** Per-channel mean and standard deviation of the set, in [0, 1] units, from at most `sampleImages` images. */
export function channelStatistics(set: Pick<ImageSet, 'pixels' | 'imageSizePx' | 'channels'>, sampleImages = 2000): { mean: number[]; std: number[] } {
  const { imageSizePx, channels, pixels } = set;
  const stride = imageSizePx * imageSizePx * channels;
  const imageCount = pixels.length / stride;
  const count = Math.min(imageCount, sampleImages);
  const step = imageCount / Math.max(1, count);
  const sum = new Float64Array(channels);
  const sumSquares = new Float64Array(channels);
  let pixelCount = 0;
  for (let i = 0; i < count; i++) {
    const start = Math.floor(i * step) * stride;
    for (let j = 0; j < stride; j += channels) {
      for (let c = 0; c < channels; c++) {
        const value = pixels[start + j + c] / 255;
        sum[c] += value;
        sumSquares[c] += value * value;
      }
      pixelCount++;
    }
  }
  const mean = Array.from(sum, (s) => s / Math.max(1, pixelCount));
  const std = Array.from(sumSquares, (s, c) => Math.sqrt(Math.max(1e-6, s / Math.max(1, pixelCount) - mean[c] ** 2)));
  return { mean, std };
}
