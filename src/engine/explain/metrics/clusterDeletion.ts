// Deletion and insertion for a cluster target (Petsiuk et al. 2018): the assigned prototype's probability as
// pixels are removed, or revealed, in a map's order, most important first. Removal either paints pixels black,
// or, after ROAD (Rong et al. 2022), fills them by noisy linear imputation from the pixels kept, so that a map
// is not rewarded for the out-of-distribution edges that black holes make.
import type { Random } from '../../util/random';
import { areaUnderCurve, revealMasks } from './insertionDeletion';

/**
 * ROAD's noisy linear imputation: each removed pixel becomes the mean of its 4 neighbours, solved over all removed
 * pixels at once with the kept ones fixed (the discrete Laplace equation, by over-relaxed Gauss–Seidel sweeps),
 * plus Gaussian noise of σ `noise` on the filled pixels. `removed` has one flag per pixel; values stay in [0, 1].
 */
export function noisyLinearImputation(image: Float32Array, removed: Uint8Array, sizePx: number, channels: number, random: Random, noise = 0.01, sweeps = 60): Float32Array {
  const filled = Float32Array.from(image);
  const pixels = sizePx * sizePx;
  const holes: number[] = [];
  for (let pixel = 0; pixel < pixels; pixel++) if (removed[pixel]) holes.push(pixel);
  if (holes.length === 0) return filled;
  // Start the holes at the mean of the kept pixels (black when nothing is kept): fewer sweeps to settle.
  for (let channel = 0; channel < channels; channel++) {
    let sum = 0;
    for (let pixel = 0; pixel < pixels; pixel++) if (!removed[pixel]) sum += image[pixel * channels + channel];
    const start = holes.length < pixels ? sum / (pixels - holes.length) : 0;
    for (const pixel of holes) filled[pixel * channels + channel] = start;
  }
  if (holes.length < pixels) {
    const relaxation = 1.8;
    for (let sweep = 0; sweep < sweeps; sweep++) {
      for (const pixel of holes) {
        const y = Math.floor(pixel / sizePx);
        const x = pixel - y * sizePx;
        for (let channel = 0; channel < channels; channel++) {
          let sum = 0;
          let count = 0;
          if (x > 0) (sum += filled[(pixel - 1) * channels + channel]), count++;
          if (x < sizePx - 1) (sum += filled[(pixel + 1) * channels + channel]), count++;
          if (y > 0) (sum += filled[(pixel - sizePx) * channels + channel]), count++;
          if (y < sizePx - 1) (sum += filled[(pixel + sizePx) * channels + channel]), count++;
          const index = pixel * channels + channel;
          filled[index] += relaxation * (sum / count - filled[index]);
        }
      }
    }
  }
  for (const pixel of holes) {
    for (let channel = 0; channel < channels; channel++) {
      const index = pixel * channels + channel;
      filled[index] = Math.min(1, Math.max(0, filled[index] + noise * random.normal()));
    }
  }
  return filled;
}

export type Removal = 'black' | 'road';

/**
 * The stages of deletion (most important pixels removed first) or insertion (most important kept first, the
 * rest removed, or the blurred image where removal is black), `steps` + 1 images of S·S·C values each.
 */
export function clusterCurveStages(image: Float32Array, blurred: Float32Array, heatmap: Float32Array, sizePx: number, channels: number, steps: number, kind: 'deletion' | 'insertion', removal: Removal, random: Random): Float32Array {
  const pixels = sizePx * sizePx;
  const masks = revealMasks(heatmap, steps);
  const stages = new Float32Array((steps + 1) * pixels * channels);
  for (let step = 0; step <= steps; step++) {
    const mask = masks.subarray(step * pixels, (step + 1) * pixels);
    // Deletion removes what the mask reveals; insertion keeps it.
    const removed = Uint8Array.from(mask, (value) => ((kind === 'deletion') === (value === 1) ? 1 : 0));
    const stage = stages.subarray(step * pixels * channels, (step + 1) * pixels * channels);
    if (removal === 'road') {
      stage.set(noisyLinearImputation(image, removed, sizePx, channels, random));
    } else {
      const fill = kind === 'deletion' ? undefined : blurred;
      for (let pixel = 0; pixel < pixels; pixel++) {
        for (let channel = 0; channel < channels; channel++) {
          const index = pixel * channels + channel;
          stage[index] = removed[pixel] ? (fill ? fill[index] : 0) : image[index];
        }
      }
    }
  }
  return stages;
}

/** The area under a curve of probabilities, one per stage (rows of `probabilities`, column `cluster`). */
export function probabilityArea(probabilities: Float32Array, prototypes: number, cluster: number): number {
  const curve = Array.from({ length: probabilities.length / prototypes }, (_, row) => probabilities[row * prototypes + cluster]);
  return areaUnderCurve(curve);
}
