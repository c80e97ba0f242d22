// Every explanation method by name: the one table the request handlers, the CLI and the tests look up.
import type { ExplainMethod } from '../../protocol/options';
import { EngineError } from '../errors';
import { attentionRollout } from './attentionRollout';
import { averagedTransforms } from './averagedTransforms';
import { conditionalOcclusion } from './conditionalOcclusion';
import { contextAgnosticOcclusion } from './contextAgnosticOcclusion';
import { counterfactualExplainer } from './counterfactual';
import { maskCounterfactualExplainer } from './maskCounterfactual';
import { regionCounterfactualExplainer } from './regionCounterfactual';
import type { Explainer } from './explainer';
import { gradCam } from './gradCam';
import { gradCamPlusPlus } from './gradCamPlusPlus';
import { inputXGradient } from './inputGradient';
import { interactionCamMax, interactionCamMean } from './interactionCam';
import { layerCam } from './layerCam';
import { pairwiseOcclusion } from './pairwiseOcclusion';
import { pixelInvariance } from './pixelInvariance';
import { randomBaseline } from './randomMap';
import { smoothGrad } from './smoothGrad';

export const explainers: Readonly<Record<ExplainMethod, Explainer>> = Object.freeze({
  gradcam: gradCam,
  'gradcam++': gradCamPlusPlus,
  layercam: layerCam,
  counterfactual: regionCounterfactualExplainer,
  'counterfactual-mask': maskCounterfactualExplainer,
  'counterfactual-pixel': counterfactualExplainer,
  'conditional-occlusion': conditionalOcclusion,
  'context-agnostic-occlusion': contextAgnosticOcclusion,
  'pairwise-occlusion': pairwiseOcclusion,
  'interaction-cam-mean': interactionCamMean,
  'interaction-cam-max': interactionCamMax,
  'input-x-gradient': inputXGradient,
  smoothgrad: smoothGrad,
  'averaged-transforms': averagedTransforms,
  'pixel-invariance': pixelInvariance,
  random: randomBaseline,
  'attention-rollout': attentionRollout,
});

/** The explainer for `method`, or a BAD_REQUEST error listing the methods there are. */
export function explainerFor(method: unknown): Explainer {
  if (typeof method === 'string' && Object.prototype.hasOwnProperty.call(explainers, method)) return explainers[method as ExplainMethod];
  throw new EngineError('BAD_REQUEST', `Unknown explanation method ${JSON.stringify(method)}. Choose one of: ${Object.keys(explainers).join(', ')}.`);
}
