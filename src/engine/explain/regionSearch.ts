// Region counterfactual (after Goyal et al. 2019 and Vandenhende et al. 2022, in pixel space): cut the image
// into a coarse grid, and greedily swap in the cell, at the same place, of one of the target cluster's nearest
// members (the donors) that raises the target's margin most, until the image is assigned to the target; then
// drop every swapped cell that is no longer needed. A round's candidates are scored together (one scorer call for
// up to 512 of them, fewer for large images), never one forward pass per candidate.
import type { CounterfactualRegion, CounterfactualSearchPlan } from '../../protocol/options';
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
  /**
   * The search's time budget in ms (0 or absent: none). The first scorer call (the unedited image) is timed; where
   * the search at `gridCells` and every donor would not fit, the donors and then the grid shrink (unless `fixed`
   * names them: the caller set them) and each round scores at most the candidates that fit, those whose donor
   * cell differs most from the image's first.
   */
  budgetMs?: number;
  /** Settings the caller chose, which the budget leaves alone. */
  fixed?: { gridCells?: boolean; donors?: boolean };
  /** Where the budget's clock reads (tests); `performance.now` else. */
  now?: () => number;
}

/** What the search settled on, and why (reported as the counterfactual's `search`). */
export type RegionSearchPlan = CounterfactualSearchPlan;

/** Rounds (pruning counted as one) a budget plans for: most searches on real networks end within a few swaps. */
const plannedRounds = 5;

/**
 * The grid, donors and candidates per round that fit `budgetMs` at `msPerImage`; `cost(n)` is the images a scorer
 * call for n computes. Unchanged settings where the full search fits.
 */
export function planRegionSearch(
  settings: { gridCells: number; donors: number; donorsAfterFirstRound: number; maxRegions: number; budgetMs: number; fixed?: { gridCells?: boolean; donors?: boolean } },
  msPerImage: number,
  spentMs: number,
  cost: (count: number) => number = (count) => count,
): RegionSearchPlan {
  const { budgetMs } = settings;
  let grid = settings.gridCells;
  let donors = settings.donors;
  const cellsOf = (side: number) => side * side;
  const full = { gridCells: grid, donors, candidatesPerRound: donors * cellsOf(grid), msPerImage, budgetMs, reduced: false };
  if (!(budgetMs > 0) || !(msPerImage > 0)) return full;
  const rounds = Math.min(plannedRounds, settings.maxRegions + 1);
  const expected = cost(donors * cellsOf(grid)) + (rounds - 1) * cost(Math.min(donors, settings.donorsAfterFirstRound) * cellsOf(grid));
  const images = Math.max(0, budgetMs - spentMs) / msPerImage;
  if (expected <= images) return full;
  // At least a few candidates a round, whatever the budget: a search that can try nothing finds nothing.
  const perRound = Math.max(4, Math.floor(images / rounds));
  if (!settings.fixed?.donors) donors = Math.max(1, Math.min(donors, Math.floor(perRound / cellsOf(grid))));
  if (!settings.fixed?.gridCells && donors * cellsOf(grid) > perRound) grid = Math.max(2, Math.min(grid, Math.floor(Math.sqrt(perRound / donors))));
  return { gridCells: grid, donors, candidatesPerRound: Math.min(perRound, donors * cellsOf(grid)), msPerImage, budgetMs, reduced: true };
}

/** Mean |donor − base| over `cell`: how much a swap there can change the image. */
function cellDifference(base: Float32Array, donor: Float32Array, cell: Cell, sizePx: number, channels: number): number {
  let sum = 0;
  for (let y = cell.yPx; y < cell.yPx + cell.heightPx; y++) {
    const start = (y * sizePx + cell.xPx) * channels;
    for (let i = start; i < start + cell.widthPx * channels; i++) sum += Math.abs(donor[i] - base[i]);
  }
  return sum;
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
  /** The unedited image's scores. */
  originalScores: Float32Array;
  plan: RegionSearchPlan;
  /** Images scored in all (the unedited and the final one included). */
  imagesScored: number;
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
  onPlan?: (plan: RegionSearchPlan) => void,
): Promise<RegionSearchOutcome> {
  if (donors.length === 0) throw new Error('the region counterfactual needs at least one donor');
  const { imageSizePx: sizePx, channels, prototypes } = scorer;
  const perImage = sizePx * sizePx * channels;
  const now = settings.now ?? (() => performance.now());
  let imagesScored = 0;
  let imagesComputed = 0;
  const score = (images: Float32Array, count: number) => {
    imagesScored += count;
    imagesComputed += scorer.imagesComputed?.(count) ?? count;
    return scorer.score(images, count);
  };
  const startedAt = now();
  const original = await score(image, 1);
  const firstCallMs = now() - startedAt;
  const cost = (count: number) => scorer.imagesComputed?.(count) ?? count;
  const plan = planRegionSearch({ ...settings, donors: donors.length, budgetMs: settings.budgetMs ?? 0 }, firstCallMs / cost(1), firstCallMs, cost);
  if (plan.donors < donors.length) donors = donors.slice(0, plan.donors);
  onPlan?.(plan);
  const cells = gridCells(sizePx, plan.gridCells);
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
      const { probabilities } = await score(batch, part.length);
      part.forEach((_, i) => (margins[start + i] = targetMargin(probabilities, prototypes, i, target)));
    }
    return margins;
  };

  let current: Float32Array = Float32Array.from(image);
  let margin = targetMargin(original.probabilities, prototypes, 0, target);
  let activeDonors = donors.map((_, donor) => donor);
  let rounds = 0;
  while (margin <= 0 && swaps.size < Math.min(settings.maxRegions, cells.length)) {
    let variants: { cell: number; donor: number; base: Float32Array }[] = [];
    for (const donor of activeDonors) for (let cell = 0; cell < cells.length; cell++) if (!swaps.has(cell)) variants.push({ cell, donor, base: current });
    let limit = plan.candidatesPerRound;
    if (plan.reduced) {
      // Re-planned from the time spent so far: what is left of the budget, over the rounds still planned; past
      // twice the budget the search stops (reported invalid) rather than keep a person waiting.
      const spentMs = now() - startedAt;
      if (spentMs > 2 * plan.budgetMs) {
        plan.stopped = true;
        break;
      }
      const msPerImage = spentMs / Math.max(1, imagesComputed);
      limit = Math.min(limit, Math.max(4, Math.floor((plan.budgetMs - spentMs) / msPerImage / Math.max(1, plannedRounds - rounds))));
    }
    if (variants.length > limit) {
      // Over budget: the swaps that change the image most are scored (a stable sort: ties keep donor, then cell order).
      const base = current;
      const change = variants.map(({ cell, donor }) => cellDifference(base, donors[donor], cells[cell], sizePx, channels));
      variants = variants.map((variant, i) => ({ variant, i })).sort((a, b) => change[b.i] - change[a.i] || a.i - b.i).slice(0, limit).map(({ variant }) => variant);
    }
    if (variants.length === 0) break;
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
      const { probabilities } = await score(batch, without.length);
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
  const scored = swaps.size === 0 ? original : await score(current, 1);
  return {
    pixels: current,
    scored,
    originalProbabilities: original.probabilities,
    regions: [...swaps.entries()].map(([cell, donor]) => ({ donor, ...cells[cell] })),
    valid: targetMargin(scored.probabilities, prototypes, 0, target) > 0,
    rounds,
    originalScores: original.scores,
    plan,
    imagesScored,
  };
}
