// Interaction-CAM (the seed "Visualizing and Understanding Self-Supervised Vision Learning"): CAM of the two
// images' cosine, with channels re-weighted by the product of both images' pooled features, so that only
// channels active in both images light up.
import type { ActivationWeighting } from './cam';
import { camExplainer, mean, perChannel } from './cam';

function interaction(pool: (map: Float32Array) => number): ActivationWeighting {
  // w_n,c,ij = relu(g_n,c,ij) · pool(A_0)_c · pool(A_1)_c; rows 0 and 1 are the image and its pair
  return (layer) => {
    const pooled = perChannel(layer.activations, layer, pool);
    const positions = layer.height * layer.width;
    return layer.gradients.map((gradient, i) => {
      const channel = Math.floor(i / positions) % layer.channels;
      return Math.max(0, gradient) * pooled[channel] * pooled[layer.channels + channel];
    });
  };
}

export const interactionCamMean = camExplainer(
  'interaction-cam-mean',
  'Interaction-CAM (mean): CAM of the pair cosine, channels weighted by the product of both images’ mean-pooled features',
  interaction(mean),
  ['similarity'],
);

export const interactionCamMax = camExplainer(
  'interaction-cam-max',
  'Interaction-CAM (max): CAM of the pair cosine, channels weighted by the product of both images’ max-pooled features',
  interaction((map) => map.reduce((high, value) => Math.max(high, value), -Infinity)),
  ['similarity'],
);
