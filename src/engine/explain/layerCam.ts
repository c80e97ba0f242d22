// LayerCAM (Jiang et al. 2021): every activation weighted by its own positive gradient.
import * as tf from '@tensorflow/tfjs-core';
import { camExplainer } from './cam';

// M = relu(Σ_c relu(g_c,ij) · A_c,ij)
export const layerCam = camExplainer('layercam', 'LayerCAM: each activation weighted by its own positive gradient', (_activations, gradients) => tf.relu(gradients));
