// Turns images of an ImageSet into a float32 [N,S,S,C] tensor in [0,1], the input multiCrop and the model expect.

import * as tf from '@tensorflow/tfjs-core';
import type { ImageSet } from './decode';

export function imageBatch(imageSet: Pick<ImageSet, 'pixels' | 'imageSizePx' | 'channels'>, indices: ArrayLike<number>): tf.Tensor4D {
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
  return tf.tensor4d(values, [indices.length, imageSizePx, imageSizePx, channels]);
}
