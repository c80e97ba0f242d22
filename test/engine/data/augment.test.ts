import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { centerView, multiCrop, sampleCropBox, type MultiCropOptions } from '../../../src/engine/data/augment';
import { imageBatch } from '../../../src/engine/data/batch';
import { EngineError } from '../../../src/engine/errors';
import { createRandom } from '../../../src/engine/util/random';

const OPTIONS: MultiCropOptions = {
  globalCrops: 2,
  globalSizePx: 12,
  globalScale: [0.4, 1],
  localCrops: 3,
  localSizePx: 6,
  localScale: [0.05, 0.4],
  flipProbability: 0.5,
  colorJitter: 0.5,
  grayscaleProbability: 0.2,
};
/** No randomness but the crop itself. */
const PLAIN: MultiCropOptions = { ...OPTIONS, colorJitter: 0, grayscaleProbability: 0, flipProbability: 0 };

before(async () => {
  await tf.setBackend('cpu');
});

/** A batch of smooth, distinct images in [0,1]. */
function sampleImages(batch: number, sizePx: number, channels: number): tf.Tensor4D {
  const values = new Float32Array(batch * sizePx * sizePx * channels);
  for (let i = 0; i < values.length; i++) values[i] = 0.5 + 0.5 * Math.sin(i * 0.37 + (i % 7));
  return tf.tensor4d(values, [batch, sizePx, sizePx, channels]);
}

function disposeAll(tensors: tf.Tensor[]): void {
  for (const tensor of tensors) tensor.dispose();
}

function maxAbsDifference(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

describe('multiCrop', () => {
  test('returns global crops then local crops of the right shapes, in [0,1]', () => {
    for (const channels of [1, 3]) {
      const images = sampleImages(4, 20, channels);
      const crops = multiCrop(images, OPTIONS, createRandom(1));
      assert.deepEqual(
        crops.map((crop) => crop.shape),
        [...Array(2).fill([4, 12, 12, channels]), ...Array(3).fill([4, 6, 6, channels])],
      );
      for (const crop of crops) {
        assert.equal(crop.dtype, 'float32');
        const [low, high] = tf.tidy(() => [tf.min(crop).dataSync()[0], tf.max(crop).dataSync()[0]]);
        assert.ok(low >= 0 && high <= 1, `values ${low}..${high} outside [0,1]`);
        assert.ok(high - low > 0.1, 'crops should not be flat');
      }
      disposeAll([images, ...crops]);
    }
  });

  test('the same seed gives the same crops, another seed different ones', () => {
    const images = sampleImages(3, 16, 3);
    const first = multiCrop(images, OPTIONS, createRandom(42));
    const again = multiCrop(images, OPTIONS, createRandom(42));
    const other = multiCrop(images, OPTIONS, createRandom(43));
    first.forEach((crop, index) => assert.equal(maxAbsDifference(crop, again[index]), 0));
    assert.ok(maxAbsDifference(first[0], other[0]) > 0.01);
    disposeAll([images, ...first, ...again, ...other]);
  });

  test('scale [1,1] without jitter returns the image, and a flip mirrors it', () => {
    // Left half bright, right half dark.
    const sizePx = 8;
    const values = new Float32Array(2 * sizePx * sizePx * 3).map((_, i) => (Math.floor(i / 3) % sizePx < sizePx / 2 ? 1 : 0));
    const images = tf.tensor4d(values, [2, sizePx, sizePx, 3]);
    const whole: MultiCropOptions = { ...PLAIN, globalCrops: 1, localCrops: 0, globalSizePx: sizePx, globalScale: [1, 1] };
    const [same] = multiCrop(images, whole, createRandom(5));
    const [flipped] = multiCrop(images, { ...whole, flipProbability: 1 }, createRandom(5));
    assert.ok(maxAbsDifference(same, images) < 1e-6, 'unflipped full crop should equal the input');
    const mirrored = tf.reverse(images, 2);
    assert.ok(maxAbsDifference(flipped, mirrored) < 1e-6, 'flipped full crop should be the mirror image');
    const leftColumn = tf.tidy(() => tf.mean(tf.slice(flipped, [0, 0, 0, 0], [2, sizePx, 1, 3])).dataSync()[0]);
    assert.equal(leftColumn, 0, 'after the flip the left edge is dark');
    disposeAll([images, same, flipped, mirrored]);
  });

  test('grayscale probability 1 makes the channels equal; colour jitter changes values', () => {
    const images = sampleImages(3, 10, 3);
    const whole: MultiCropOptions = { ...PLAIN, globalCrops: 1, localCrops: 0, globalSizePx: 10, globalScale: [1, 1] };
    const [grey] = multiCrop(images, { ...whole, grayscaleProbability: 1 }, createRandom(9));
    const channelSpread = tf.tidy(() => tf.max(tf.sub(tf.max(grey, -1), tf.min(grey, -1))).dataSync()[0]);
    assert.ok(channelSpread < 1e-6, `channels differ by ${channelSpread}`);
    const [jittered] = multiCrop(images, { ...whole, colorJitter: 1 }, createRandom(9));
    assert.ok(maxAbsDifference(jittered, images) > 0.05, 'jitter at full strength should change the image');
    disposeAll([images, grey, jittered]);
  });

  test('leaks no tensors over 20 calls', () => {
    const images = sampleImages(4, 16, 3);
    const random = createRandom(3);
    disposeAll(multiCrop(images, OPTIONS, random));
    const before = tf.memory().numTensors;
    for (let call = 0; call < 20; call++) disposeAll(multiCrop(images, { ...OPTIONS, grayscaleProbability: 0.5 }, random));
    assert.equal(tf.memory().numTensors, before);
    images.dispose();
  });

  test('rejects a bad scale range with BAD_CONFIG', () => {
    const images = sampleImages(1, 8, 1);
    for (const globalScale of [[0, 0.5], [0.6, 0.5], [0.5, 1.5]] as [number, number][]) {
      assert.throws(
        () => multiCrop(images, { ...OPTIONS, globalScale }, createRandom(1)),
        (error: unknown) => error instanceof EngineError && error.code === 'BAD_CONFIG',
      );
    }
    images.dispose();
  });
});

describe('sampleCropBox', () => {
  test('boxes stay inside the image, cover the asked area share and keep the aspect ratio', () => {
    const random = createRandom(11);
    const heightPx = 33;
    const widthPx = 41;
    for (let sample = 0; sample < 2000; sample++) {
      const flip = sample % 2 === 1;
      const [y1, x1, y2, x2] = sampleCropBox(random, heightPx, widthPx, [0.1, 0.6], flip);
      for (const value of [y1, x1, y2, x2]) assert.ok(value >= -1e-9 && value <= 1 + 1e-9, `coordinate ${value}`);
      assert.equal(x1 > x2, flip, 'a flip swaps x1 and x2');
      const cropHeightPx = (y2 - y1) * (heightPx - 1) + 1;
      const cropWidthPx = Math.abs(x2 - x1) * (widthPx - 1) + 1;
      const areaShare = (cropHeightPx * cropWidthPx) / (heightPx * widthPx);
      assert.ok(areaShare >= 0.1 - 1e-9 && areaShare <= 0.6 + 1e-9, `area share ${areaShare}`);
      const aspect = cropWidthPx / cropHeightPx;
      assert.ok(aspect >= 3 / 4 - 1e-9 && aspect <= 4 / 3 + 1e-9, `aspect ${aspect}`);
    }
  });
});

describe('centerView and imageBatch', () => {
  test('imageBatch scales bytes to [0,1] and picks the asked images', () => {
    const imageSizePx = 2;
    const pixels = Uint8Array.from({ length: 3 * 4 }, (_, i) => i * 20);
    const batch = imageBatch({ pixels, imageSizePx, channels: 1 }, [2, 0]);
    assert.deepEqual(batch.shape, [2, 2, 2, 1]);
    const values = Array.from(batch.dataSync());
    const expected = [160, 180, 200, 220, 0, 20, 40, 60].map((value) => value / 255);
    values.forEach((value, index) => assert.ok(Math.abs(value - expected[index]) < 1e-6));
    batch.dispose();
    assert.throws(() => imageBatch({ pixels, imageSizePx, channels: 1 }, [3]), RangeError);
  });

  test('centerView resizes the whole image and keeps corners', () => {
    const images = sampleImages(2, 9, 3);
    const view = centerView(images, 5);
    assert.deepEqual(view.shape, [2, 5, 5, 3]);
    const corner = (tensor: tf.Tensor4D, at: number): number[] =>
      tf.tidy(() => Array.from(tf.slice(tensor, [0, at, at, 0], [1, 1, 1, 3]).dataSync()));
    corner(view, 4).forEach((value, channel) => assert.ok(Math.abs(value - corner(images, 8)[channel]) < 1e-6));
    const same = centerView(images, 9);
    assert.equal(maxAbsDifference(same, images), 0);
    disposeAll([images, view, same]);
  });
});
