// Grad-CAM on onnxruntime's device: the graph of runtime/explainGraph.ts computes what cam.ts does with
// gradCam.ts's weighting (a prototype's score, its gradient at the last feature map, the map), in one run.
import type { DeviceKind } from '../../protocol/options';
import type { SwavModel } from '../model/model';
import { explainGraphNames as names, type ExplainGraphs } from '../runtime/explainGraph';
import { deviceGraphs, explainSession } from './onDevice';

export interface DeviceGradCam {
  /** S·S values in [0, 1]. */
  heatmap: Float32Array;
  /** The prototype's score at the image. */
  score: number;
  device: DeviceKind;
}

/** Grad-CAM of prototype `prototype` for one image (S·S·C values in [0, 1], NHWC). */
export async function gradCamOnDevice(model: SwavModel | ExplainGraphs, image: Float32Array, imageSizePx: number, prototype: number, device?: DeviceKind): Promise<DeviceGradCam> {
  const graphs = deviceGraphs(model);
  const spec = { channels: graphs.channels, prototypes: graphs.prototypes };
  const session = await explainSession(graphs.owner, `gradcam ${imageSizePx}px`, () => graphs.gradCam({ batch: 1, imageSizePx }), device);
  const target = new Float32Array(spec.prototypes);
  target[prototype] = 1;
  const outputs = await session.run(
    { [names.images]: { data: image, dims: [1, imageSizePx, imageSizePx, spec.channels] }, [names.target]: { data: target, dims: [1, spec.prototypes] } },
    [names.heatmap, names.scores],
  );
  return { heatmap: outputs[names.heatmap].data, score: outputs[names.scores].data[prototype], device: session.device };
}
