// CGC consistency ("Consistent Explanations by Contrastive Learning", Pillai et al. 2022): the map of a
// transformed image should be the transformed map. Scored by their cosine, and by CGC's contrastive loss,
// where each image's transformed map must pick out its own map among the other images' maps.
import { cropAndResize } from '../../data/cropPixels';
import type { Random } from '../../util/random';
import { cosine } from '../target';

export interface SpatialTransform {
  name: string;
  /** Transforms an image or a map [S, S, C] alike. */
  apply(pixels: Float32Array, sizePx: number, channels: number): Float32Array;
}

export const horizontalFlip: SpatialTransform = {
  name: 'flip',
  apply: (pixels, sizePx, channels) => {
    const out = new Float32Array(pixels.length);
    for (let y = 0; y < sizePx; y++) {
      for (let x = 0; x < sizePx; x++) {
        for (let c = 0; c < channels; c++) out[(y * sizePx + x) * channels + c] = pixels[(y * sizePx + sizePx - 1 - x) * channels + c];
      }
    }
    return out;
  },
};

/** Crops the box [y1, x1, y2, x2] (in [0, 1]) and resizes it back to the full size. */
export function cropTransform(box: [number, number, number, number]): SpatialTransform {
  return { name: 'crop', apply: (pixels, sizePx, channels) => cropAndResize(pixels, sizePx, sizePx, channels, box, sizePx) };
}

/** A flip, and a random crop of 60–85 % of the side. */
export function consistencyTransforms(random: Random): SpatialTransform[] {
  const side = random.uniform(0.6, 0.85);
  const top = random.uniform(0, 1 - side);
  const left = random.uniform(0, 1 - side);
  return [horizontalFlip, cropTransform([top, left, top + side, left + side])];
}

/** T(h) for an S × S map. */
export function transformMap(map: Float32Array, transform: SpatialTransform): Float32Array {
  return transform.apply(map, Math.round(Math.sqrt(map.length)), 1);
}

// CGC's temperature for the similarities of maps.
export const consistencyTemperature = 0.5;

/**
 * InfoNCE over images: −log softmax_j(cos(q_i, k_j) / τ)[i], averaged over i, where q_i = T(h(x_i)) and
 * k_j = h(T(x_j)). With one image there are no negatives and the loss is 0.
 */
export function contrastiveConsistencyLoss(queries: Float32Array[], keys: Float32Array[], temperature = consistencyTemperature): number {
  if (queries.length === 0) return 0;
  let total = 0;
  for (let i = 0; i < queries.length; i++) {
    const logits = keys.map((key) => cosine(queries[i], key) / temperature);
    const max = Math.max(...logits);
    const logSum = max + Math.log(logits.reduce((sum, logit) => sum + Math.exp(logit - max), 0));
    total += logSum - logits[i];
  }
  return total / queries.length;
}
