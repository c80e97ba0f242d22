// SwAV multi-crop: the seeded draws (data/augment.ts) and the JS crops made from them (data/cropPixels.ts), which
// the training graph's crops are checked against (runtime/augmentGraph.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkCropScales, drawCrops, drawViews, sampleCropBox, type MultiCropOptions } from '../../../src/engine/data/augment';
import { batchPixels } from '../../../src/engine/data/batch';
import { changeColours, cropAndResize, cropViews, wholeViews } from '../../../src/engine/data/cropPixels';
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

/** A batch of smooth, distinct images in [0,1], NHWC. */
function sampleImages(batch: number, sizePx: number, channels: number): Float32Array {
  const values = new Float32Array(batch * sizePx * sizePx * channels);
  for (let i = 0; i < values.length; i++) values[i] = 0.5 + 0.5 * Math.sin(i * 0.37 + (i % 7));
  return values;
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** The multi-crop of `images` for `options` from one seeded stream: global views, then local ones. */
function multiCrop(images: Float32Array, batch: number, sizePx: number, channels: number, options: MultiCropOptions, seed: number): { global: Float32Array; local: Float32Array } {
  const random = createRandom(seed);
  const global = drawViews(random, batch, sizePx, options.globalCrops, options.globalScale, options);
  const local = drawViews(random, batch, sizePx, options.localCrops, options.localScale, options);
  const jitter = options.colorJitter > 0;
  return {
    global: cropViews(images, batch, sizePx, channels, global, options.globalSizePx, jitter),
    local: cropViews(images, batch, sizePx, channels, local, options.localSizePx, jitter),
  };
}

describe('cropAndResize and changeColours (hand-computed values)', () => {
  // A 3×3 grey image; bilinear samples between pixel centres, computed by hand.
  const image = Float32Array.from([0, 1, 4, 2, 8, 3, 5, 0, 6]);

  test('the whole image at 5 px: pixel centres kept, samples between them interpolated', () => {
    const out = cropAndResize(image, 3, 3, 1, [0, 0, 1, 1], 5);
    const at = (y: number, x: number) => out[y * 5 + x];
    // Corners and the centre are pixels of the image.
    assert.deepEqual([at(0, 0), at(0, 4), at(4, 0), at(4, 4), at(2, 2)], [0, 4, 5, 6, 8]);
    // (0.5, 0.5) between 0, 1, 2 and 8: rows 0.5 and 5, then 2.75.
    assert.equal(at(1, 1), 2.75);
    // (0, 1.5) between 1 and 4; (1.5, 2) between 3 and 6.
    assert.equal(at(0, 3), 2.5);
    assert.equal(at(3, 4), 4.5);
  });

  test('a flipped box mirrors, a box past the edge samples zeros there, one pixel is the box centre', () => {
    const straight = cropAndResize(image, 3, 3, 1, [0, 0, 1, 1], 5);
    const flipped = cropAndResize(image, 3, 3, 1, [0, 1, 1, 0], 5);
    for (let y = 0; y < 5; y++) for (let x = 0; x < 5; x++) assert.equal(flipped[y * 5 + x], straight[y * 5 + 4 - x]);
    // Rows at −1, 0 and 1: the first outside the image.
    assert.deepEqual(Array.from(cropAndResize(image, 3, 3, 1, [-0.5, 0, 0.5, 1], 3)), [0, 0, 0, 0, 1, 4, 2, 8, 3]);
    // Samples at 0.5 and 1.5 on both axes.
    assert.deepEqual(Array.from(cropAndResize(image, 3, 3, 1, [0.25, 0.25, 0.75, 0.75], 2)), [2.75, 4, 3.75, 4.25]);
    assert.deepEqual(Array.from(cropAndResize(image, 3, 3, 1, [0, 0, 1, 1], 1)), [8]);
  });

  test('channels are interleaved (NHWC) and each interpolated on its own', () => {
    const rgb = Float32Array.from(Array.from(image).flatMap((v) => [v, 2 * v, -v]));
    const out = cropAndResize(rgb, 3, 3, 3, [0.25, 0.25, 0.75, 0.75], 2);
    assert.deepEqual(Array.from(out), [2.75, 4, 3.75, 4.25].flatMap((v) => [v, 2 * v, -v]));
  });

  test('changeColours: brightness, contrast about the mean luma, saturation about each pixel\'s luma, then grey, clipped', () => {
    const view = () => Float32Array.from([0.2, 0.4, 0.6, 0.8, 0.6, 0.4]);
    // Brightness 1.5 gives [0.3, 0.6, 0.9] and [1 (clipped), 0.9, 0.6]; mean luma 0.7201; contrast 0.5 about it,
    // then saturation 2 about each pixel's luma (0.6323 and 0.8079).
    const coloured = changeColours(view(), 3, { brightness: 1.5, contrast: 0.5, saturation: 2, grey: 0 });
    const expected = [0.3878, 0.6878, 0.9878, 0.9122, 0.8122, 0.5122];
    assert.ok(maxAbsDifference(coloured, expected) < 1e-6, `${Array.from(coloured)}`);
    // Grey 1 turns each pixel into its luma.
    const grey = changeColours(view(), 3, { brightness: 1.5, contrast: 0.5, saturation: 2, grey: 1 });
    assert.ok(maxAbsDifference(grey, [0.6323, 0.6323, 0.6323, 0.8079, 0.8079, 0.8079]) < 1e-6, `${Array.from(grey)}`);
    // Factors of 1 leave a view as it is; a grey view takes brightness and contrast only.
    assert.deepEqual(Array.from(changeColours(view(), 3, { brightness: 1, contrast: 1, saturation: 1, grey: 0 })), Array.from(view()));
    const mono = changeColours(Float32Array.from([0.2, 0.6]), 1, { brightness: 2, contrast: 0.5, saturation: 0, grey: 1 });
    // [0.4, 1.2 → 1], mean 0.7, then halfway to it.
    assert.ok(maxAbsDifference(mono, [0.55, 0.85]) < 1e-6, `${Array.from(mono)}`);
  });
});

describe('multi-crop from the seeded draws', () => {
  test('global crops then local crops of the right sizes, in [0,1]', () => {
    for (const channels of [1, 3]) {
      const images = sampleImages(4, 20, channels);
      const crops = multiCrop(images, 4, 20, channels, OPTIONS, 1);
      assert.equal(crops.global.length, 2 * 4 * 12 * 12 * channels);
      assert.equal(crops.local.length, 3 * 4 * 6 * 6 * channels);
      for (const crop of [crops.global, crops.local]) {
        const low = Math.min(...crop);
        const high = Math.max(...crop);
        assert.ok(low >= 0 && high <= 1, `values ${low}..${high} outside [0,1]`);
        assert.ok(high - low > 0.1, 'crops should not be flat');
      }
    }
  });

  test('the same seed gives the same crops, another seed different ones', () => {
    const images = sampleImages(3, 16, 3);
    const first = multiCrop(images, 3, 16, 3, OPTIONS, 42);
    const again = multiCrop(images, 3, 16, 3, OPTIONS, 42);
    const other = multiCrop(images, 3, 16, 3, OPTIONS, 43);
    assert.equal(maxAbsDifference(first.global, again.global), 0);
    assert.equal(maxAbsDifference(first.local, again.local), 0);
    assert.ok(maxAbsDifference(first.global, other.global) > 0.01);
  });

  test('scale [1,1] without jitter returns the image, and a flip mirrors it', () => {
    // Left half bright, right half dark.
    const sizePx = 8;
    const images = new Float32Array(2 * sizePx * sizePx * 3).map((_, i) => (Math.floor(i / 3) % sizePx < sizePx / 2 ? 1 : 0));
    const whole: MultiCropOptions = { ...PLAIN, globalCrops: 1, localCrops: 0, globalSizePx: sizePx, globalScale: [1, 1] };
    const same = multiCrop(images, 2, sizePx, 3, whole, 5).global;
    const flipped = multiCrop(images, 2, sizePx, 3, { ...whole, flipProbability: 1 }, 5).global;
    assert.ok(maxAbsDifference(same, images) < 1e-6, 'unflipped full crop should equal the input');
    const mirrored = images.map((_, i) => {
      const [pixel, channel] = [Math.floor(i / 3), i % 3];
      const [row, column] = [Math.floor(pixel / sizePx), pixel % sizePx];
      return images[(row * sizePx + sizePx - 1 - column) * 3 + channel];
    });
    assert.ok(maxAbsDifference(flipped, mirrored) < 1e-6, 'flipped full crop should be the mirror image');
    assert.equal(flipped[0], 0, 'after the flip the left edge is dark');
  });

  test('grayscale probability 1 makes the channels equal; colour jitter changes values', () => {
    const images = sampleImages(3, 10, 3);
    const whole: MultiCropOptions = { ...PLAIN, globalCrops: 1, localCrops: 0, globalSizePx: 10, globalScale: [1, 1] };
    const grey = multiCrop(images, 3, 10, 3, { ...whole, grayscaleProbability: 1 }, 9).global;
    let channelSpread = 0;
    for (let p = 0; p < grey.length; p += 3) channelSpread = Math.max(channelSpread, Math.max(grey[p], grey[p + 1], grey[p + 2]) - Math.min(grey[p], grey[p + 1], grey[p + 2]));
    assert.ok(channelSpread < 1e-6, `channels differ by ${channelSpread}`);
    const jittered = multiCrop(images, 3, 10, 3, { ...whole, colorJitter: 1 }, 9).global;
    assert.ok(maxAbsDifference(jittered, images) > 0.05, 'jitter at full strength should change the image');
  });

  test('every image draws the same count of numbers: colour options never move the boxes', () => {
    const boxes = (options: MultiCropOptions) => drawCrops(createRandom(7), [6, 20, 20], [0.2, 1], options).boxes;
    const reference = boxes(OPTIONS);
    for (const options of [{ ...OPTIONS, colorJitter: 0, grayscaleProbability: 0 }, { ...OPTIONS, grayscaleProbability: 1 }, { ...OPTIONS, colorJitter: 1 }]) assert.deepEqual(boxes(options), reference);
    assert.notDeepEqual(boxes({ ...OPTIONS, flipProbability: 0 }), reference, 'flips are part of the boxes');
    const draws = drawCrops(createRandom(7), [6, 20, 20], [0.2, 1], { ...OPTIONS, colorJitter: 0.5, grayscaleProbability: 1 });
    assert.ok(draws.anyGrayscale && draws.grayscale.every((g) => g === 1));
    // Jitter factors within [1 − 0.8·s, 1 + 0.8·s].
    for (const factor of [...draws.brightness, ...draws.contrast, ...draws.saturation]) assert.ok(factor >= 0.6 - 1e-6 && factor <= 1.4 + 1e-6, `${factor}`);
    // drawViews lays the views out view by view, each view one drawCrops of the batch.
    const random = createRandom(7);
    const views = drawViews(random, 6, 20, 2, [0.2, 1], OPTIONS);
    assert.deepEqual(views.boxes.subarray(0, 24), reference);
    assert.equal(views.colours.length, 2 * 6 * 4);
  });

  test('rejects a bad scale range with BAD_CONFIG', () => {
    for (const globalScale of [[0, 0.5], [0.6, 0.5], [0.5, 1.5]] as [number, number][]) {
      assert.throws(
        () => checkCropScales({ ...OPTIONS, globalScale }),
        (error: unknown) => error instanceof EngineError && error.code === 'BAD_CONFIG',
      );
    }
    assert.throws(() => checkCropScales({ ...OPTIONS, localScale: [0.5, 0.2] }), /localScale/);
    checkCropScales(OPTIONS);
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

describe('wholeViews and batchPixels', () => {
  test('batchPixels scales bytes to [0,1] and picks the asked images', () => {
    const imageSizePx = 2;
    const pixels = Uint8Array.from({ length: 3 * 4 }, (_, i) => i * 20);
    const batch = batchPixels({ pixels, imageSizePx, channels: 1 }, [2, 0]);
    assert.equal(batch.length, 2 * 2 * 2);
    const expected = [160, 180, 200, 220, 0, 20, 40, 60].map((value) => value / 255);
    Array.from(batch).forEach((value, index) => assert.ok(Math.abs(value - expected[index]) < 1e-6));
    assert.throws(() => batchPixels({ pixels, imageSizePx, channels: 1 }, [3]), RangeError);
  });

  test('wholeViews resizes the whole image and keeps corners', () => {
    const images = sampleImages(2, 9, 3);
    const view = wholeViews(images, 2, 9, 3, 5);
    assert.equal(view.length, 2 * 5 * 5 * 3);
    const corner = (values: Float32Array, sizePx: number, image: number, at: number) => Array.from(values.subarray(((image * sizePx + at) * sizePx + at) * 3, ((image * sizePx + at) * sizePx + at) * 3 + 3));
    for (const image of [0, 1]) {
      corner(view, 5, image, 4).forEach((value, channel) => assert.ok(Math.abs(value - corner(images, 9, image, 8)[channel]) < 1e-6));
      corner(view, 5, image, 0).forEach((value, channel) => assert.ok(Math.abs(value - corner(images, 9, image, 0)[channel]) < 1e-6));
    }
    // The middle of the 5 px view is the middle pixel of the 9 px image.
    assert.deepEqual(corner(view, 5, 1, 2), corner(images, 9, 1, 4));
    assert.equal(wholeViews(images, 2, 9, 3, 9), images, 'the same size is the images themselves');
  });
});
