// Region counterfactual (after Goyal et al. 2019 and Vandenhende et al. 2022, in pixel space): cut the image
// into a coarse grid, and greedily swap in the cell, at the same place, of one of the target cluster's nearest
// members (the donors) that raises the target's margin most, until the image is assigned to the target; then
// drop every swapped cell that is no longer needed. A round's candidates are scored together (one scorer call for
// up to 512 of them, fewer for large images), never one forward pass per candidate.
import type { CounterfactualRegion } from '../../protocol';
import { throwIfCancelled, yieldToEventLoop } from '../jobContext';
import type { ClusterScorer, ScoredImages } from './scorer';

export interface Cell {
  xPx: number;
  yPx: number;
  widthPx: number;
  heightPx: number;
}

/** `cells` × `cells` rectangles covering a square of `sizePx`, row by row; sides differ by at most a pixel. */
export function gridCells(sizePx: number, cells: number): Cell[] {
  const count = Math.max(1, Math.min(cells, sizePx));
  const edge = (i: number) => Math.round((i * sizePx) / count);
  const grid: Cell[] = [];
  for (let row = 0; row < count; row++) {
    for (let column = 0; column < count; column++) grid.push({ xPx: edge(column), yPx: edge(row), widthPx: edge(column + 1) - edge(column), heightPx: edge(row + 1) - edge(row) });
  }
  return grid;
}

/** Copies `cell` of `source` into `destination` (both S·S·C, NHWC). */
export function pasteCell(destination: Float32Array, source: Float32Array, cell: Cell, sizePx: number, channels: number): void {
  for (let y = cell.yPx; y < cell.yPx + cell.heightPx; y++) {
    const start = (y * sizePx + cell.xPx) * channels;
    destination.set(source.subarray(start, start + cell.widthPx * channels), start);
  }
}

/** log p(target) − log max_{k ≠ target} p(k) of image `row`: > 0 exactly when the image is assigned to the target. */
export function targetMargin(probabilities: Float32Array, prototypes: number, row: number, target: number): number {
  const offset = row * prototypes;
  let runnerUp = 0;
  for (let k = 0; k < prototypes; k++) if (k !== target) runnerUp = Math.max(runnerUp, probabilities[offset + k]);
  return Math.log(Math.max(probabilities[offset + target], 1e-30)) - Math.log(Math.max(runnerUp, 1e-30));
}

export interface RegionSearchSettings {
  gridCells: number;
  /** Give up (invalid) after this many swaps. */
  maxRegions: number;
  /** After the first round, only this many donors (those whose best swap helped most) stay candidates. */
  donorsAfterFirstRound: number;
}

export interface RegionSearchOutcome {
  pixels: Float32Array;
  scored: ScoredImages;
  originalProbabilities: Float32Array;
  /** The kept swaps, in the order they were made. */
  regions: CounterfactualRegion[];
  valid: boolean;
  /** Greedy rounds run (each one scorer call), pruning not counted. */
  rounds: number;
}

/** Candidates built and scored at once: up to 512, fewer for large images (at most 16M values, 64 MB). */
const candidatesPerCall = (valuesPerImage: number) => Math.max(16, Math.min(512, Math.floor(2 ** 24 / valuesPerImage)));

/**
 * Moves `image` into cluster `target` by swapping in cells of `donors` (each S·S·C, NHWC, in [0, 1]).
 * `onRound` hears the margin after each round, for progress.
 */
export async function regionSearch(
  scorer: ClusterScorer,
  image: Float32Array,
  donors: Float32Array[],
  target: number,
  settings: RegionSearchSettings,
  signal?: AbortSignal,
  onRound?: (round: number, margin: number) => void,
): Promise<RegionSearchOutcome> {
  if (donors.length === 0) throw new Error('the region counterfactual needs at least one donor');
  const { imageSizePx: sizePx, channels, prototypes } = scorer;
  const perImage = sizePx * sizePx * channels;
  const cells = gridCells(sizePx, settings.gridCells);
  const original = await scorer.score(image, 1);
  const swaps = new Map<number, number>(); // cell → donor
  const compose = (chosen: Map<number, number>): Float32Array => {
    const pixels = Float32Array.from(image);
    for (const [cell, donor] of chosen) pasteCell(pixels, donors[donor], cells[cell], sizePx, channels);
    return pixels;
  };
  /** Scores variants of `base`, each with one more cell of one donor; returns the margins. */
  const scoreVariants = async (variants: { cell: number; donor: number; base: Float32Array }[]): Promise<Float32Array> => {
    const margins = new Float32Array(variants.length);
    const perCall = candidatesPerCall(perImage);
    for (let start = 0; start < variants.length; start += perCall) {
      const part = variants.slice(start, start + perCall);
      const batch = new Float32Array(part.length * perImage);
      part.forEach(({ cell, donor, base }, i) => {
        const view = batch.subarray(i * perImage, (i + 1) * perImage);
        view.set(base);
        pasteCell(view, donors[donor], cells[cell], sizePx, channels);
      });
      const { probabilities } = await scorer.score(batch, part.length);
      part.forEach((_, i) => (margins[start + i] = targetMargin(probabilities, prototypes, i, target)));
    }
    return margins;
  };

  let current: Float32Array = Float32Array.from(image);
  let margin = targetMargin(original.probabilities, prototypes, 0, target);
  let activeDonors = donors.map((_, donor) => donor);
  let rounds = 0;
  while (margin <= 0 && swaps.size < Math.min(settings.maxRegions, cells.length)) {
    const variants: { cell: number; donor: number; base: Float32Array }[] = [];
    for (const donor of activeDonors) for (let cell = 0; cell < cells.length; cell++) if (!swaps.has(cell)) variants.push({ cell, donor, base: current });
    const margins = await scoreVariants(variants);
    rounds++;
    let best = 0;
    for (let i = 1; i < margins.length; i++) if (margins[i] > margins[best]) best = i;
    if (rounds === 1 && activeDonors.length > settings.donorsAfterFirstRound) {
      const bestOfDonor = new Map<number, number>();
      variants.forEach(({ donor }, i) => bestOfDonor.set(donor, Math.max(bestOfDonor.get(donor) ?? -Infinity, margins[i])));
      activeDonors = [...bestOfDonor.entries()].sort((a, b) => b[1] - a[1]).slice(0, settings.donorsAfterFirstRound).map(([donor]) => donor);
    }
    swaps.set(variants[best].cell, variants[best].donor);
    current = compose(swaps);
    margin = margins[best];
    onRound?.(rounds, margin);
    if (signal) {
      await yieldToEventLoop();
      throwIfCancelled(signal);
    }
  }

  // Prune: while some swap can be undone with the image still in the target, undo the one that leaves the largest margin.
  if (margin > 0) {
    for (;;) {
      const kept = [...swaps.keys()];
      if (kept.length <= 1) break;
      const without = kept.map((cell) => {
        const rest = new Map(swaps);
        rest.delete(cell);
        return compose(rest);
      });
      const batch = new Float32Array(without.length * perImage);
      without.forEach((pixels, i) => batch.set(pixels, i * perImage));
      const { probabilities } = await scorer.score(batch, without.length);
      let best = -1;
      let bestMargin = 0;
      kept.forEach((_, i) => {
        const value = targetMargin(probabilities, prototypes, i, target);
        if (value > bestMargin) [best, bestMargin] = [i, value];
      });
      if (best < 0) break;
      swaps.delete(kept[best]);
    }
    current = compose(swaps);
  }
  const scored = await scorer.score(current, 1);
  return {
    pixels: current,
    scored,
    originalProbabilities: original.probabilities,
    regions: [...swaps.entries()].map(([cell, donor]) => ({ donor, ...cells[cell] })),
    valid: targetMargin(scored.probabilities, prototypes, 0, target) > 0,
    rounds,
  };
}
