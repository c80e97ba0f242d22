// LayerCAM (Jiang et al. 2021): every activation weighted by its own positive gradient.
import { camExplainer } from './cam';

// M = relu(Σ_c relu(g_c,ij) · A_c,ij)
export const layerCam = camExplainer('layercam', 'LayerCAM: each activation weighted by its own positive gradient', (layer) => layer.gradients.map((gradient) => Math.max(0, gradient)));
