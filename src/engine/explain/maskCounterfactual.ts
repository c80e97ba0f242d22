// Mask counterfactual (after Fong & Vedaldi 2017 and Fong et al. 2019): blend a donor of the target cluster
// into the image through a coarse mask m, x' = (1 − m↑)·x + m↑·d with m↑ the mask upsampled, and minimise
// softplus(1 − margin(x')) + λ_a·(mean(m) − a)² + λ_tv·TV(m), margin = log p(target) − log Σ_{k≠target} p(k),
// for several fixed areas a at once (one batch). Every few steps each mask is cut to its a·G² strongest cells,
// those edits are scored in one scorer call, and the smallest area whose edit lands in the target wins.
// The classification term's gradient at the blended images comes from runtime/explainGraph.ts's mask-gradient
// graph on onnxruntime's device; the blend, the penalties and Adam on the mask's logits are small and run here.
import { throwIfCancelled, yieldToEventLoop } from '../jobContext';
import { explainGraphNames as names } from '../runtime/explainGraph';
import { differenceMap } from './counterfactual';
import { adam, describeEdit } from './counterfactualSearch';
import type { CounterfactualOutcome, Donor, Explainer } from './explainer';
import { explainSession } from './onDevice';
import { donorsFor, usedDonors } from './regionCounterfactual';
import { gridCells, pasteCell, targetMargin, type Cell } from './regionSearch';
import { scorerFor, type ClusterScorer } from './scorer';

/** The fixed areas tried, as shares of the image; smallest first. */
export const maskAreas = [0.04, 0.08, 0.12, 0.2, 0.3, 0.5];
/** How many donors (the best of the nearest) get masks of their own. */
const maskDonors = 2;
const areaWeight = 50;
const tvWeight = 0.2;
const learningRate = 0.25;
/** How far (in logits per standard deviation) a cell's single-swap gain moves its starting mask value. */
const warmStart = 1;
/** Cut the masks and check them every this many steps. */
const checkEvery = 10;

/**
 * The best donors to blend in: of the target cluster's nearest members, those held most firmly by the target
 * (the largest margin), in their nearest-first order; the very nearest members often sit on the border.
 */
async function bestDonors(scorer: ClusterScorer, donors: Donor[], target: number): Promise<Donor[]> {
  const perImage = scorer.imageSizePx * scorer.imageSizePx * scorer.channels;
  const batch = new Float32Array(donors.length * perImage);
  donors.forEach((donor, i) => batch.set(donor.pixels, i * perImage));
  const { probabilities } = await scorer.score(batch, donors.length);
  const margins = donors.map((_, i) => targetMargin(probabilities, scorer.prototypes, i, target));
  const chosen = donors.map((_, i) => i).sort((a, b) => margins[b] - margins[a]).slice(0, maskDonors).sort((a, b) => a - b);
  return chosen.map((i) => donors[i]);
}

/** Per donor, the target margin after swapping each cell alone, standardised over that donor's cells. */
async function singleCellGains(scorer: ClusterScorer, original: Float32Array, donors: Donor[], cells: Cell[], target: number): Promise<Float32Array[]> {
  const perImage = original.length;
  const batch = new Float32Array(donors.length * cells.length * perImage);
  donors.forEach((donor, d) =>
    cells.forEach((cell, c) => {
      const view = batch.subarray((d * cells.length + c) * perImage, (d * cells.length + c + 1) * perImage);
      view.set(original);
      pasteCell(view, donor.pixels, cell, scorer.imageSizePx, scorer.channels);
    }),
  );
  const { probabilities } = await scorer.score(batch, donors.length * cells.length);
  return donors.map((_, d) => {
    const margins = Float32Array.from(cells, (_, c) => targetMargin(probabilities, scorer.prototypes, d * cells.length + c, target));
    const mean = margins.reduce((sum, value) => sum + value, 0) / margins.length;
    const deviation = Math.sqrt(margins.reduce((sum, value) => sum + (value - mean) ** 2, 0) / margins.length) || 1;
    return margins.map((value) => (value - mean) / deviation);
  });
}

/**
 * ∂/∂m of λ · mean |m[i+1] − m[i]| over rows and over columns of `count` G × G masks (as a total variation of the
 * batch), added into `gradient`; sign(0) is taken as −1 (TensorFlow.js's Abs gradient, kept so that masks repeat).
 */
function addTotalVariationGradient(masks: Float64Array, count: number, side: number, weight: number, gradient: Float64Array): void {
  const differences = count * (side - 1) * side;
  if (differences === 0) return;
  const unit = weight / differences;
  for (let n = 0; n < count; n++) {
    const offset = n * side * side;
    for (let a = 0; a < side - 1; a++) {
      for (let b = 0; b < side; b++) {
        for (const [here, next] of [
          [offset + a * side + b, offset + (a + 1) * side + b],
          [offset + b * side + a, offset + b * side + a + 1],
        ]) {
          const sign = masks[next] - masks[here] > 0 ? unit : -unit;
          gradient[next] += sign;
          gradient[here] -= sign;
        }
      }
    }
  }
}

export const maskCounterfactualExplainer: Explainer = {
  method: 'counterfactual-mask',
  description: 'Mask counterfactual: the smallest coarse mask that blends a donor of the target cluster into the image and moves it there',
  targets: ['prototype'],
  defaultTarget: 'nearest-other-cluster',
  async explain(input) {
    const { net, image, target, options, signal, progress } = input;
    if (target.kind !== 'prototype') throw new Error('a counterfactual needs a target cluster');
    const startedAt = performance.now();
    const { sizePx, channels, pixels: original } = image;
    const scorer = await scorerFor(net, sizePx, channels);
    const donors = await bestDonors(scorer, await donorsFor(input, target.prototype), target.prototype);
    const cells = gridCells(sizePx, options.counterfactualGridCells);
    const side = Math.round(Math.sqrt(cells.length));
    const cellCount = side * side;
    // One mask per (donor, area), donor-major.
    const pairs = donors.flatMap((_, donor) => maskAreas.map((area) => ({ donor, area, cellsKept: Math.max(1, Math.round(area * cells.length)) })));
    const count = pairs.length;
    const { graphs } = net;
    const maskSession = await explainSession(graphs.owner, `mask gradient ${count}×${sizePx}px T=${net.temperature}`, () => graphs.maskGradient({ batch: count, imageSizePx: sizePx, temperature: net.temperature }));
    const perImage = sizePx * sizePx * channels;
    const plane = sizePx * sizePx;
    const targetRows = Float32Array.from({ length: count * net.prototypes }, (_, i) => (i % net.prototypes === target.prototype ? 1 : 0));
    // Each pixel's cell (row-major over the grid): the mask is upsampled by cell membership, so each pixel takes
    // its cell's value and the mask optimised is the one that is cut and shown.
    const cellOfPixel = new Int32Array(plane);
    cells.forEach((cell, index) => {
      for (let y = cell.yPx; y < cell.yPx + cell.heightPx; y++) cellOfPixel.fill(index, y * sizePx + cell.xPx, y * sizePx + cell.xPx + cell.widthPx);
    });
    const logitOf = (p: number) => Math.log(p / (1 - p));
    // Warm start: each cell's mask starts above or below the area's level by how much swapping that cell alone
    // (one batched scoring of every cell of every donor) moves the target's margin, in standard deviations.
    const gains = await singleCellGains(scorer, original, donors, cells, target.prototype);
    let logits = Float64Array.from(pairs.flatMap(({ donor, area }) => Array.from(gains[donor], (gain) => logitOf(area) + warmStart * gain)));
    const firstMoment = new Float64Array(logits.length);
    const secondMoment = new Float64Array(logits.length);
    const sigmoid = (values: Float64Array) => values.map((value) => 1 / (1 + Math.exp(-value)));

    /** Gradient at the logits of softplus(1 − margin) over the blends, plus the area and TV terms of the masks. */
    const gradientOf = async (theta: Float64Array): Promise<Float64Array> => {
      const masks = sigmoid(theta);
      // x' = (1 − m↑)·x + m↑·d
      const edited = new Float32Array(count * perImage);
      pairs.forEach(({ donor }, n) => {
        const donorPixels = donors[donor].pixels;
        for (let p = 0; p < plane; p++) {
          const m = masks[n * cellCount + cellOfPixel[p]];
          for (let c = 0; c < channels; c++) {
            const i = p * channels + c;
            edited[n * perImage + i] = original[i] * (1 - m) + donorPixels[i] * m;
          }
        }
      });
      const outputs = await maskSession.run({ [names.images]: { data: edited, dims: [count, sizePx, sizePx, channels] }, [names.target]: { data: targetRows, dims: [count, net.prototypes] } }, [names.imageGradient]);
      const imageGradient = outputs[names.imageGradient].data;
      // ∂L/∂m_cell = Σ over the cell's pixels and channels of ∂L/∂x′ · (d − x)
      const gradient = new Float64Array(theta.length);
      pairs.forEach(({ donor }, n) => {
        const donorPixels = donors[donor].pixels;
        for (let p = 0; p < plane; p++) {
          let sum = 0;
          for (let c = 0; c < channels; c++) {
            const i = p * channels + c;
            sum += imageGradient[n * perImage + i] * (donorPixels[i] - original[i]);
          }
          gradient[n * cellCount + cellOfPixel[p]] += sum;
        }
      });
      // areaWeight · Σ_n (mean(m_n) − a_n)²
      pairs.forEach(({ area }, n) => {
        let mean = 0;
        for (let k = 0; k < cellCount; k++) mean += masks[n * cellCount + k] / cellCount;
        for (let k = 0; k < cellCount; k++) gradient[n * cellCount + k] += (areaWeight * 2 * (mean - area)) / cellCount;
      });
      addTotalVariationGradient(masks, count, side, tvWeight * count, gradient);
      // through m = σ(θ)
      return gradient.map((value, i) => value * masks[i] * (1 - masks[i]));
    };

    /** Each mask cut to its strongest cells: the edits, scored at once. */
    const cutAndScore = async () => {
      const values = sigmoid(logits);
      const chosen = pairs.map(({ cellsKept }, i) => {
        const own = values.subarray(i * cells.length, (i + 1) * cells.length);
        return Array.from(own.keys()).sort((a, b) => own[b] - own[a] || a - b).slice(0, cellsKept);
      });
      const edits = new Float32Array(count * perImage);
      pairs.forEach(({ donor }, i) => {
        const view = edits.subarray(i * perImage, (i + 1) * perImage);
        view.set(original);
        for (const cell of chosen[i]) pasteCell(view, donors[donor].pixels, cells[cell], sizePx, channels);
      });
      const scored = await scorer.score(edits, count);
      const margins = pairs.map((_, i) => targetMargin(scored.probabilities, net.prototypes, i, target.prototype));
      return { chosen, edits, scored, margins };
    };

    let steps = 0;
    let cut = await cutAndScore();
    const originalScored = await scorer.score(original, 1);
    const anyValid = () => cut.margins.some((margin) => margin > 0);
    // The first cut is checked only after some steps: before them every cell ties and the cut is arbitrary.
    while (steps < Math.min(checkEvery, options.counterfactualMaskSteps) || (!anyValid() && steps < options.counterfactualMaskSteps)) {
      const gradient = await gradientOf(logits);
      steps++;
      // Adam, as the pixel counterfactual, on the mask's logits.
      const next = new Float64Array(logits.length);
      for (let i = 0; i < logits.length; i++) {
        firstMoment[i] = adam.beta1 * firstMoment[i] + (1 - adam.beta1) * gradient[i];
        secondMoment[i] = adam.beta2 * secondMoment[i] + (1 - adam.beta2) * gradient[i] * gradient[i];
        const update = firstMoment[i] / (1 - adam.beta1 ** steps) / (Math.sqrt(secondMoment[i] / (1 - adam.beta2 ** steps)) + adam.adamEpsilon);
        next[i] = logits[i] - learningRate * update;
      }
      logits = next;
      if (steps % checkEvery === 0 || steps === options.counterfactualMaskSteps) {
        cut = await cutAndScore();
        progress?.(steps / options.counterfactualMaskSteps, `Mask step ${steps}: best target margin ${Math.max(...cut.margins).toFixed(2)}`);
      }
      if (signal && steps % checkEvery === 0) {
        await yieldToEventLoop();
        throwIfCancelled(signal);
      }
    }
    // The smallest area that lands in the target (then the larger margin); else the largest margin.
    const order = pairs.map((_, i) => i).sort((a, b) => (cut.margins[b] > 0 ? 1 : 0) - (cut.margins[a] > 0 ? 1 : 0) || (cut.margins[a] > 0 ? pairs[a].area - pairs[b].area : 0) || cut.margins[b] - cut.margins[a]);
    const best = order[0];
    const { donor } = pairs[best];
    const prototypes = net.prototypes;
    const edit = describeEdit({
      kind: 'mask',
      pixels: cut.edits.slice(best * perImage, (best + 1) * perImage),
      original,
      channels,
      probabilities: cut.scored.probabilities.slice(best * prototypes, (best + 1) * prototypes),
      scores: cut.scored.scores.slice(best * prototypes, (best + 1) * prototypes),
      originalProbabilities: originalScored.probabilities,
      target: target.prototype,
      steps,
      converged: cut.margins[best] > 0,
      startedAt,
    });
    const regions = cut.chosen[best].sort((a, b) => a - b).map((cell) => ({ donor, ...cells[cell] }));
    const outcome: CounterfactualOutcome = { ...edit, ...usedDonors(donors, regions) };
    return { heatmap: differenceMap(outcome, original, channels), score: originalScored.scores[target.prototype], counterfactual: outcome, device: scorer.device };
  },
};
