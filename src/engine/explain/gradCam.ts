// Grad-CAM (Selvaraju et al. 2017): each channel weighted by its spatially averaged gradient. For a prototype of
// the engine's own network it runs as one ONNX graph on onnxruntime's device (ortGradCam.ts); similarity targets
// and frozen imported backbones run on tfjs.
import * as tf from '@tensorflow/tfjs-core';
import type { Explainer, Explanation } from './explainer';
import { camExplainer } from './cam';
import { deviceGraphs, runsOnDevice, withTfjsFallback } from './onDevice';
import { gradCamOnDevice } from './ortGradCam';

// w_c = mean_ij ∂y/∂A_c,ij
const onTfjs = camExplainer('gradcam', 'Grad-CAM: last-stage activations weighted by their spatially averaged gradients', (_activations, gradients) =>
  tf.mean(gradients, [1, 2], true),
);

export const gradCam: Explainer = {
  ...onTfjs,
  async explain(input) {
    const { net, image, target } = input;
    if (target.kind !== 'prototype' || !runsOnDevice(net)) return onTfjs.explain(input);
    const onDevice = () => gradCamOnDevice(deviceGraphs(net), image.dataSync() as Float32Array, image.shape[1], target.prototype);
    // A frozen import has no tfjs road to fall back to where tfjs cannot run it: its error is the one to see.
    return net.model ? withTfjsFallback<Explanation>('Grad-CAM', input.log, onDevice, () => onTfjs.explain(input)) : onDevice();
  },
};
