// Input × gradient (Shrikumar et al. 2016): how much each pixel's value, times its gradient, moves the target.
import type { Explainer } from './explainer';
import { averagedGradientMaps } from './gradients';

export const inputXGradient: Explainer = {
  method: 'input-x-gradient',
  description: 'Input × gradient: each pixel times the gradient of the target at it',
  targets: ['prototype', 'similarity'],
  defaultTarget: 'neighbour',
  async explain({ net, image, target }) {
    return averagedGradientMaps(net, image, target, image.pixels, target.kind === 'similarity' ? target.pair : undefined, 1);
  },
};
