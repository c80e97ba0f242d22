// Average drop and increase (Chattopadhay et al. 2018, in the seed's two-image form): mask each image by its
// own map (x ⊙ h) and see how much the similarity falls, and whether it rises.
import type { PairScorer } from './insertionDeletion';

export interface AverageDropScores {
  /** max(0, s − s′) / s with both images masked. */
  simultaneousDrop: number;
  /** 1 when masking both raised the similarity, else 0. */
  simultaneousIncrease: number;
  /** The same with one image masked and the other intact, both directions averaged. */
  conditionalDrop: number;
  conditionalIncrease: number;
}

/** x ⊙ h over every channel. */
function masked(pixels: Float32Array, heatmap: Float32Array): Float32Array {
  const channels = pixels.length / heatmap.length;
  return pixels.map((value, i) => value * heatmap[Math.floor(i / channels)]);
}

function stacked(...images: Float32Array[]): Float32Array {
  const out = new Float32Array(images.reduce((total, image) => total + image.length, 0));
  images.reduce((offset, image) => (out.set(image, offset), offset + image.length), 0);
  return out;
}

export async function averageDropIncrease(score: PairScorer, image: Float32Array, pair: Float32Array, heatmap: Float32Array, pairHeatmap: Float32Array): Promise<AverageDropScores> {
  const maskedImage = masked(image, heatmap);
  const maskedPair = masked(pair, pairHeatmap);
  // Rows: intact, both masked, image masked, pair masked.
  const [base, both, imageOnly, pairOnly] = await score(stacked(image, maskedImage, maskedImage, image), stacked(pair, maskedPair, pair, maskedPair));
  // A base at or below 0 has nothing to drop from.
  const drop = (value: number) => (base > 1e-6 ? Math.max(0, base - value) / base : 0);
  const increase = (value: number) => (value > base ? 1 : 0);
  return {
    simultaneousDrop: drop(both),
    simultaneousIncrease: increase(both),
    conditionalDrop: (drop(imageOnly) + drop(pairOnly)) / 2,
    conditionalIncrease: (increase(imageOnly) + increase(pairOnly)) / 2,
  };
}
