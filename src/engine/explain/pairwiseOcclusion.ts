// Pairwise occlusion (the seed): erase a random rectangle in both images at once and score the drop in their
// similarity. A pixel's value is the mean drop over the erasures that covered it less the mean drop over those
// that did not, so that the other image's erasures, independent of this pixel, cancel out (the seed instead
// gives each drop to one image by embedding norm).
import * as tf from '@tensorflow/tfjs-core';
import { createRandom } from '../util/random';
import { normalizeArray, type Explainer } from './explainer';
import { cosineRows, featuresOf, targetValue } from './target';
import { erasingMasks, spreadOverMasks } from './views';

/** relu(mean drop where erased − mean drop where not), normalised. */
function dropMap(drops: Float32Array, masks: Float32Array, pixels: number): Float32Array {
  const erased = spreadOverMasks(drops, masks, pixels);
  const kept = spreadOverMasks(drops, masks.map((value) => 1 - value), pixels);
  return normalizeArray(erased.map((value, pixel) => Math.max(0, value - kept[pixel])));
}

export const pairwiseOcclusion: Explainer = {
  method: 'pairwise-occlusion',
  description: 'Pairwise occlusion: random erasures on both images, each pixel scored by the mean similarity drop when erased',
  targets: ['similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target, options, seed }) {
    if (target.kind !== 'similarity') throw new Error('pairwise occlusion explains a similarity');
    const random = createRandom(seed);
    const sizePx = image.shape[1];
    const pixels = sizePx * sizePx;
    const count = options.pairwiseErasures;
    const imageMasks = erasingMasks(count, sizePx, random);
    const pairMasks = erasingMasks(count, sizePx, random);
    const base = targetValue(net, image, target);
    const drops = new Float32Array(count);
    const chunkSize = Math.max(1, Math.floor(options.batchSize / 2));
    for (let start = 0; start < count; start += chunkSize) {
      const size = Math.min(chunkSize, count - start);
      const chunk = tf.tidy(() => {
        const masksOf = (masks: Float32Array) => tf.tensor4d(masks.subarray(start * pixels, (start + size) * pixels), [size, sizePx, sizePx, 1]);
        const erased = tf.concat([tf.mul(image, tf.sub(1, masksOf(imageMasks))), tf.mul(target.pair, tf.sub(1, masksOf(pairMasks)))], 0) as tf.Tensor4D;
        const features = featuresOf(net, erased);
        return tf.sub(base, cosineRows(tf.slice(features, [0, 0], [size, -1]), tf.slice(features, [size, 0], [size, -1])));
      });
      drops.set(chunk.dataSync() as Float32Array, start);
      chunk.dispose();
    }
    return { heatmap: dropMap(drops, imageMasks, pixels), pairHeatmap: dropMap(drops, pairMasks, pixels), score: base };
  },
};
