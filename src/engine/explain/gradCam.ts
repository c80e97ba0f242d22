// Grad-CAM (Selvaraju et al. 2017): each channel weighted by its spatially averaged gradient.
import * as tf from '@tensorflow/tfjs-core';
import { camExplainer } from './cam';

// w_c = mean_ij ∂y/∂A_c,ij
export const gradCam = camExplainer('gradcam', 'Grad-CAM: last-stage activations weighted by their spatially averaged gradients', (_activations, gradients) =>
  tf.mean(gradients, [1, 2], true),
);
