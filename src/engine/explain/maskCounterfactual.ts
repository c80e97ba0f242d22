// Mask counterfactual (after Fong & Vedaldi 2017 and Fong et al. 2019): blend a donor of the target cluster
// into the image through a coarse mask m, x' = (1 − m↑)·x + m↑·d with m↑ the mask upsampled, and minimise
// softplus(1 − margin(x')) + λ_a·(mean(m) − a)² + λ_tv·TV(m), margin = log p(target) − log Σ_{k≠target} p(k),
// for several fixed areas a at once (one batch). Every few steps each mask is cut to its a·G² strongest cells,
// those edits are scored in one scorer call, and the smallest area whose edit lands in the target wins.
import * as tf from '@tensorflow/tfjs-core';
import { throwIfCancelled, yieldToEventLoop } from '../jobContext';
import { differenceMap, totalVariation } from './counterfactual';
import { adam, describeEdit } from './counterfactualSearch';
import type { CounterfactualOutcome, Donor, Explainer } from './explainer';
import { donorsFor, usedDonors } from './regionCounterfactual';
import { gridCells, pasteCell, targetMargin, type Cell } from './regionSearch';
import { prototypeScore, scorerFor, type ClusterScorer } from './scorer';
import { explainSession } from './onDevice';
import { explainGraphNames as names } from '../runtime/explainGraph';

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

export const maskCounterfactualExplainer: Explainer = {
  method: 'counterfactual-mask',
  description: 'Mask counterfactual: the smallest coarse mask that blends a donor of the target cluster into the image and moves it there',
  targets: ['prototype'],
  defaultTarget: 'nearest-other-cluster',
  async explain(input) {
    const { net, image, target, options, signal, log, progress } = input;
    if (target.kind !== 'prototype') throw new Error('a counterfactual needs a target cluster');
    const startedAt = performance.now();
    const [, sizePx, , channels] = image.shape;
    const scorer = await scorerFor(net, sizePx, channels, options.batchSize, log);
    const donors = await bestDonors(scorer, await donorsFor(input, target.prototype), target.prototype);
    const original = image.dataSync() as Float32Array;
    const cells = gridCells(sizePx, options.counterfactualGridCells);
    const side = Math.round(Math.sqrt(cells.length));
    // One mask per (donor, area), donor-major.
    const pairs = donors.flatMap((_, donor) => maskAreas.map((area) => ({ donor, area, cellsKept: Math.max(1, Math.round(area * cells.length)) })));
    const count = pairs.length;
    // A frozen import (tfjs may not run it, a ViT never): the classification term's gradient at the blended images
    // comes from explainGraph.ts's mask-gradient graph on onnxruntime, and tfjs carries it back to the mask's
    // logits through the blend as the linear term Σ x′·∂L/∂x′, beside the area and TV terms (see gradientOf).
    const graphs = net.graphs;
    const maskSession = graphs
      ? await explainSession(graphs.owner, `mask gradient ${count}×${sizePx}px T=${net.temperature}`, () => graphs.maskGradient({ batch: count, imageSizePx: sizePx, temperature: net.temperature }))
      : undefined;
    const perImage = sizePx * sizePx * channels;
    const donorBatch = new Float32Array(count * perImage);
    pairs.forEach(({ donor }, i) => donorBatch.set(donors[donor].pixels, i * perImage));
    const donorImages = tf.tensor4d(donorBatch, [count, sizePx, sizePx, channels]);
    const areaTargets = tf.tensor1d(pairs.map(({ area }) => area));
    const targetOneHot = tf.tidy(() => tf.oneHot(tf.fill([count], target.prototype, 'int32') as tf.Tensor1D, net.prototypes));
    const logitOf = (p: number) => Math.log(p / (1 - p));
    // Warm start: each cell's mask starts above or below the area's level by how much swapping that cell alone
    // (one batched scoring of every cell of every donor) moves the target's margin, in standard deviations.
    const gains = await singleCellGains(scorer, original, donors, cells, target.prototype);
    let logits = tf.tensor4d(
      pairs.flatMap(({ donor, area }) => Array.from(gains[donor], (gain) => logitOf(area) + warmStart * gain)),
      [count, side, side, 1],
    );
    let firstMoment = tf.zerosLike(logits);
    let secondMoment = tf.zerosLike(logits);

    // Upsampling by cell membership, M↑ = R·M·Rᵀ with R [S, G] (R[y][g] = 1 where row y lies in cell row g; the
    // grid is the same across and down): each pixel takes its cell's mask value, so the mask optimised is the one
    // that is cut and shown (bilinear upsampling would blend cells the cut then takes whole).
    const rows = new Float32Array(count * sizePx * side);
    for (let pair = 0; pair < count; pair++) {
      for (let g = 0; g < side; g++) for (let y = cells[g * side].yPx; y < cells[g * side].yPx + cells[g * side].heightPx; y++) rows[(pair * sizePx + y) * side + g] = 1;
    }
    const upsampling = tf.tensor3d(rows, [count, sizePx, side]);
    const blend = (theta: tf.Tensor4D) => {
      const mask = tf.sigmoid(theta) as tf.Tensor4D;
      const upsampled = tf.reshape(tf.matMul(tf.matMul(upsampling, tf.reshape(mask, [count, side, side])), upsampling, false, true), [count, sizePx, sizePx, 1]);
      return { mask, edited: tf.add(tf.mul(image, tf.sub(1, upsampled)), tf.mul(donorImages, upsampled)) as tf.Tensor4D };
    };
    /** The area and TV terms of the masks. */
    const penalties = (mask: tf.Tensor4D): tf.Tensor[] => [tf.mul(tf.sum(tf.square(tf.sub(tf.mean(mask, [1, 2, 3]), areaTargets))), areaWeight), tf.mul(totalVariation(mask), tvWeight * count)];
    const lossOf = (theta: tf.Tensor4D): tf.Scalar => {
      const { mask, edited } = blend(theta);
      // The margin log p(target) − log Σ_{k≠target} p(k) pushed above 1 (softplus): validity asks the target to
      // beat every other cluster, which −log p(target) alone does not aim at.
      const logits = tf.div(net.outputs(net.featureMap(edited)).scores, net.temperature);
      const targetLogit = tf.sum(tf.mul(logits, targetOneHot), 1);
      const otherLogits = tf.logSumExp(tf.add(logits, tf.mul(targetOneHot, -1e4)), 1);
      const classification = tf.sum(tf.softplus(tf.sub(1, tf.sub(targetLogit, otherLogits))));
      return tf.addN([classification, ...penalties(mask)]) as tf.Scalar;
    };
    // The engine's own network differentiates lossOf on tfjs; a frozen import its blend and penalties only.
    const targetRows = Float32Array.from({ length: count * net.prototypes }, (_, i) => (i % net.prototypes === target.prototype ? 1 : 0));
    const gradientOf = async (theta: tf.Tensor4D): Promise<tf.Tensor4D> => {
      if (!maskSession) return tf.tidy(() => tf.grad((t: tf.Tensor) => lossOf(t as tf.Tensor4D))(theta) as tf.Tensor4D);
      const editedTensor = tf.tidy(() => blend(theta).edited);
      const editedValues = editedTensor.dataSync() as Float32Array;
      editedTensor.dispose();
      const dims = [count, sizePx, sizePx, channels];
      const outputs = await maskSession.run({ [names.images]: { data: editedValues, dims }, [names.target]: { data: targetRows, dims: [count, net.prototypes] } }, [names.imageGradient]);
      return tf.tidy(() => {
        const imageGradient = tf.tensor4d(outputs[names.imageGradient].data, [count, sizePx, sizePx, channels]);
        return tf.grad((t: tf.Tensor) => {
          const { mask, edited } = blend(t as tf.Tensor4D);
          return tf.addN([tf.sum(tf.mul(edited, imageGradient)), ...penalties(mask)]) as tf.Scalar;
        })(theta) as tf.Tensor4D;
      });
    };

    /** Each mask cut to its strongest cells: the edits, scored at once. */
    const cutAndScore = async () => {
      const soft = tf.sigmoid(logits);
      const values = soft.dataSync() as Float32Array;
      soft.dispose();
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

    try {
      let steps = 0;
      let cut = await cutAndScore();
      const originalScored = await scorer.score(original, 1);
      const anyValid = () => cut.margins.some((margin) => margin > 0);
      // The first cut is checked only after some steps: before them every cell ties and the cut is arbitrary.
      while (steps < Math.min(checkEvery, options.counterfactualMaskSteps) || (!anyValid() && steps < options.counterfactualMaskSteps)) {
        const gradient = await gradientOf(logits);
        steps++;
        const [next, first, second] = tf.tidy(() => {
          // Adam, as counterfactual.ts, on the mask's logits.
          const m = tf.add(tf.mul(firstMoment, adam.beta1), tf.mul(gradient, 1 - adam.beta1));
          const v = tf.add(tf.mul(secondMoment, adam.beta2), tf.mul(tf.square(gradient), 1 - adam.beta2));
          const update = tf.div(tf.div(m, 1 - adam.beta1 ** steps), tf.add(tf.sqrt(tf.div(v, 1 - adam.beta2 ** steps)), adam.adamEpsilon));
          return [tf.sub(logits, tf.mul(update, learningRate)), m, v];
        });
        tf.dispose([gradient, logits, firstMoment, secondMoment]);
        [logits, firstMoment, secondMoment] = [next as tf.Tensor4D, first as tf.Tensor4D, second as tf.Tensor4D];
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
      return { heatmap: differenceMap(outcome, original, channels), score: await prototypeScore(net, scorer, original, image, target.prototype), counterfactual: outcome, device: scorer.device };
    } finally {
      tf.dispose([donorImages, areaTargets, targetOneHot, upsampling, logits, firstMoment, secondMoment]);
    }
  },
};
