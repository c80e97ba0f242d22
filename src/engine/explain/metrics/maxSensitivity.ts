// Max-sensitivity (Yeh et al. 2019, as the seed computes it): the largest relative change ‖h − h′‖ / ‖h‖ of a
// map when both inputs get small uniform noise, over a few draws; the image's and the pair's maxima averaged.
import type { Random } from '../../util/random';

export type PairMaps = (image: Float32Array, pair: Float32Array) => Promise<{ heatmap: Float32Array; pairHeatmap?: Float32Array }>;

export function relativeChange(reference: Float32Array, other: Float32Array): number {
  let difference = 0;
  let norm = 0;
  for (let i = 0; i < reference.length; i++) {
    difference += (reference[i] - other[i]) ** 2;
    norm += reference[i] ** 2;
  }
  return Math.sqrt(difference) / Math.max(Math.sqrt(norm), 1e-6);
}

export async function maxSensitivity(
  mapsOf: PairMaps,
  image: Float32Array,
  pair: Float32Array,
  reference: { heatmap: Float32Array; pairHeatmap?: Float32Array },
  samples: number,
  radius: number,
  random: Random,
): Promise<number> {
  let imageMax = 0;
  let pairMax = 0;
  for (let sample = 0; sample < samples; sample++) {
    const noisyImage = image.map((value) => value + random.uniform(-radius, radius));
    const noisyPair = pair.map((value) => value + random.uniform(-radius, radius));
    const noisy = await mapsOf(noisyImage, noisyPair);
    imageMax = Math.max(imageMax, relativeChange(reference.heatmap, noisy.heatmap));
    if (reference.pairHeatmap && noisy.pairHeatmap) pairMax = Math.max(pairMax, relativeChange(reference.pairHeatmap, noisy.pairHeatmap));
  }
  return reference.pairHeatmap ? (imageMax + pairMax) / 2 : imageMax;
}
