import type { ExplainOptions } from '../../protocol/options';
import { EngineError } from '../errors';

/** The one place explanation defaults live; CLI flags and the explain panel map onto these. */
export const defaultExplainOptions: Readonly<ExplainOptions> = Object.freeze({
  counterfactualSteps: 300,
  counterfactualLearningRate: 0.05,
  counterfactualMseWeight: 10,
  counterfactualTvWeight: 0.5,
  counterfactualL2Weight: 0.01,
  counterfactualMargin: 0.1,
  counterfactualGridCells: 7, // 4 px cells at 28 px, the size of a ResNet's last feature map at 224 px
  counterfactualDonors: 10,
  counterfactualMaxRegions: 24,
  counterfactualBudgetMs: 15_000, // an imported ResNet-50 on 2 CPU cores: ~0.2 s an image
  counterfactualMaskSteps: 60,
  occlusionPatchPx: 0, // 0: a quarter of the image side
  occlusionStridePx: 0, // 0: a sixteenth of the image side, at least 1 px
  pairwiseErasures: 128,
  smoothGradSamples: 24,
  smoothGradNoise: 0.15, // as in SmoothGrad and the seed's code: σ = 0.15 · (max − min)
  averagedTransformViews: 4,
  averagedTransformSteps: 6,
  pixelInvarianceViews: 128,
  batchSize: 64,
  displaySizePx: 0, // 0: at least 224 px, a whole multiple of the image size
  overlayOpacity: 0.5,
});

/** Merges partial options over the defaults and rejects values that cannot work, naming the setting. */
export function resolveExplainOptions(partial: Partial<ExplainOptions> = {}): ExplainOptions {
  const defined = Object.fromEntries(Object.entries(partial).filter(([, value]) => value !== undefined));
  const options = { ...defaultExplainOptions, ...defined } as ExplainOptions;
  options.counterfactualGiven ??= { gridCells: 'counterfactualGridCells' in defined, donors: 'counterfactualDonors' in defined };
  const check = (ok: boolean, setting: keyof ExplainOptions, expected: string) => {
    if (!ok) throw new EngineError('BAD_CONFIG', `Explanation setting "${setting}" is ${JSON.stringify(options[setting])}; it must be ${expected}.`);
  };
  const isInt = (value: number, min: number, max: number) => Number.isInteger(value) && value >= min && value <= max;
  const isNumber = (value: number, min: number, max: number) => typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max;
  check(isInt(options.counterfactualSteps, 1, 100_000), 'counterfactualSteps', 'a whole number ≥ 1');
  check(isNumber(options.counterfactualLearningRate, 1e-6, 10), 'counterfactualLearningRate', 'a number between 0 and 10');
  check(isNumber(options.counterfactualMseWeight, 0, 1e6), 'counterfactualMseWeight', 'a number ≥ 0');
  check(isNumber(options.counterfactualTvWeight, 0, 1e6), 'counterfactualTvWeight', 'a number ≥ 0');
  check(isNumber(options.counterfactualL2Weight, 0, 1e6), 'counterfactualL2Weight', 'a number ≥ 0');
  check(isNumber(options.counterfactualMargin, 0, 1), 'counterfactualMargin', 'a probability margin from 0 to 1');
  check(isInt(options.counterfactualGridCells, 2, 64), 'counterfactualGridCells', 'a whole number of cells per side from 2 to 64');
  check(isInt(options.counterfactualDonors, 1, 20), 'counterfactualDonors', 'a whole number of donor images from 1 to 20');
  check(isInt(options.counterfactualMaxRegions, 1, 4096), 'counterfactualMaxRegions', 'a whole number ≥ 1');
  check(isNumber(options.counterfactualBudgetMs, 0, 86_400_000), 'counterfactualBudgetMs', 'a time in ms ≥ 0 (0: no budget)');
  check(isInt(options.counterfactualMaskSteps, 1, 10_000), 'counterfactualMaskSteps', 'a whole number ≥ 1');
  check(isInt(options.occlusionPatchPx, 0, 4096), 'occlusionPatchPx', 'a whole number of pixels (0 = a quarter of the image)');
  check(isInt(options.occlusionStridePx, 0, 4096), 'occlusionStridePx', 'a whole number of pixels (0 = a sixteenth of the image)');
  check(isInt(options.pairwiseErasures, 1, 100_000), 'pairwiseErasures', 'a whole number ≥ 1');
  check(isInt(options.smoothGradSamples, 1, 10_000), 'smoothGradSamples', 'a whole number ≥ 1');
  check(isNumber(options.smoothGradNoise, 0, 10), 'smoothGradNoise', 'a number ≥ 0');
  check(isInt(options.averagedTransformViews, 1, 1000), 'averagedTransformViews', 'a whole number ≥ 1');
  check(isInt(options.averagedTransformSteps, 1, 1000), 'averagedTransformSteps', 'a whole number ≥ 1');
  check(isInt(options.pixelInvarianceViews, 2, 100_000), 'pixelInvarianceViews', 'a whole number ≥ 2');
  check(isInt(options.batchSize, 1, 8192), 'batchSize', 'a whole number from 1 to 8192');
  check(isInt(options.displaySizePx, 0, 4096), 'displaySizePx', 'a whole number of pixels (0 = automatic)');
  check(isNumber(options.overlayOpacity, 0, 1), 'overlayOpacity', 'a number from 0 to 1');
  return options;
}
