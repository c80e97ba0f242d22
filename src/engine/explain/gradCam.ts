// Grad-CAM (Selvaraju et al. 2017): each channel weighted by its spatially averaged gradient.
import { camExplainer, mean, perChannel, spread } from './cam';

// w_c = mean_ij ∂y/∂A_c,ij
export const gradCam = camExplainer('gradcam', 'Grad-CAM: last-stage activations weighted by their spatially averaged gradients', (layer) => spread(perChannel(layer.gradients, layer, mean), layer));
