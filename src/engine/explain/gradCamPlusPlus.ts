// Grad-CAM++ (Chattopadhyay et al. 2018): channel weights from positive gradients, each pixel weighted by α.
import { camExplainer, perChannel, spread } from './cam';

// α_ij = g² / (2g² + Σ_ab A_ab · g³), w_c = Σ_ij α_ij · relu(g_ij), as pytorch-grad-cam computes it
export const gradCamPlusPlus = camExplainer('gradcam++', 'Grad-CAM++: channel weights from positive gradients, with per-pixel α', (layer) => {
  const positions = layer.height * layer.width;
  const activationSums = perChannel(layer.activations, layer, (map) => map.reduce((sum, value) => sum + value, 0));
  const channelWeights = activationSums.map((activationSum, map) => {
    let weight = 0;
    for (let p = map * positions; p < (map + 1) * positions; p++) {
      const g = layer.gradients[p];
      if (g === 0) continue;
      const alpha = (g * g) / (2 * g * g + activationSum * g * g * g + 1e-7);
      weight += alpha * Math.max(0, g);
    }
    return weight;
  });
  return spread(channelWeights, layer);
});
