// The default counterfactual: the fewest grid cells, borrowed from the target cluster's nearest members, that
// move the image into the target cluster (regionSearch.ts), as an Explainer with its figures and diff map.
import { EngineError } from '../errors';
import { differenceMap } from './counterfactual';
import { describeEdit } from './counterfactualSearch';
import type { CounterfactualOutcome, Donor, Explainer, ExplainInput } from './explainer';
import { regionSearch, type RegionSearchPlan } from './regionSearch';
import { scorerFor } from './scorer';

/** Donors a round keeps after the first (those whose best swap helped most): later rounds stay cheap. */
const donorsAfterFirstRound = 4;

/** "A 4 × 4 grid, 1 donor, ≤ 14 candidates a round (210 ms an image)". */
export function describePlan(plan: RegionSearchPlan): string {
  return `a ${plan.gridCells} × ${plan.gridCells} grid, ${plan.donors} donor${plan.donors === 1 ? '' : 's'}, ≤ ${plan.candidatesPerRound} candidates a round (${plan.msPerImage.toFixed(plan.msPerImage < 10 ? 1 : 0)} ms an image)`;
}

/** The donors the target cluster offers for this request; BAD_REQUEST where there is no index to take them from. */
export async function donorsFor(input: ExplainInput, cluster: number): Promise<Donor[]> {
  if (!input.donors) throw new EngineError('BAD_REQUEST', 'This counterfactual borrows from the images of the target cluster, so it needs a run with an index. Run "cluster-lens index <run>" first.');
  return input.donors(cluster, input.options.counterfactualDonors);
}

/** Keeps only the donors that `regions` use, renumbered in their original (nearest first) order. */
export function usedDonors<R extends { donor: number }>(donors: Donor[], regions: R[]): { donors: Donor[]; regions: R[] } {
  const used = [...new Set(regions.map((region) => region.donor))].sort((a, b) => a - b);
  return { donors: used.map((donor) => donors[donor]), regions: regions.map((region) => ({ ...region, donor: used.indexOf(region.donor) })) };
}

export const regionCounterfactualExplainer: Explainer = {
  method: 'counterfactual',
  description: "Region counterfactual: the fewest grid cells of the target cluster's nearest members that, swapped in, move the image into that cluster",
  targets: ['prototype'],
  defaultTarget: 'nearest-other-cluster',
  async explain(input) {
    const { net, image, target, options, signal, log, progress } = input;
    if (target.kind !== 'prototype') throw new Error('a counterfactual needs a target cluster');
    const startedAt = performance.now();
    const { sizePx, channels, pixels: original } = image;
    const donors = await donorsFor(input, target.prototype);
    const scorer = await scorerFor(net, sizePx, channels);
    const maxRegions = options.counterfactualMaxRegions;
    const search = await regionSearch(
      scorer,
      original,
      donors.map((donor) => donor.pixels),
      target.prototype,
      { gridCells: options.counterfactualGridCells, maxRegions, donorsAfterFirstRound, budgetMs: options.counterfactualBudgetMs, fixed: options.counterfactualGiven },
      signal,
      (round, margin) => progress?.(Math.min(0.95, round / maxRegions), `Region ${round}: target margin ${margin.toFixed(2)}`),
      (plan) => {
        if (!plan.reduced) return;
        const message = `${describePlan(plan)} to fit the ${(plan.budgetMs / 1000).toFixed(0)} s budget`;
        log?.('info', `Region counterfactual: ${message}.`);
        progress?.(0, message);
      },
    );
    const edit = describeEdit({
      kind: 'region',
      pixels: search.pixels,
      original,
      channels,
      probabilities: search.scored.probabilities,
      scores: search.scored.scores,
      originalProbabilities: search.originalProbabilities,
      target: target.prototype,
      steps: search.rounds,
      converged: search.valid,
      startedAt,
    });
    const outcome: CounterfactualOutcome = { ...edit, ...usedDonors(donors, search.regions), search: search.plan };
    // The search scored the unedited image already.
    return { heatmap: differenceMap(outcome, original, channels), score: search.originalScores[target.prototype], counterfactual: outcome, device: scorer.device };
  },
};
