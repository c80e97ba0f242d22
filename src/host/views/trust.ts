// What a view may ask of the engine in an untrusted workspace (VS Code's Restricted Mode): nothing that loads a
// model or opens onnxruntime. Browsing what a run folder stores (its index, its map, its neighbour graph) stays.
// Kept free of `vscode` so that the rule is unit-tested on its own.
import type { WorkRequest } from '../../protocol/engine';
import type { EngineClient } from '../engineClient';

export type WorkRequestType = WorkRequest['type'];

/**
 * Whether each engine request can load a model (a checkpoint, an imported ONNX backbone) or open onnxruntime, from
 * src/engine/worker.ts and its jobs. A record over every request type: a new request does not compile until it is
 * placed here.
 */
export const loadsModel: Readonly<Record<WorkRequestType, boolean>> = {
  train: true,
  index: true,
  // An image in the index answers from index.bin, but any other image is embedded by the checkpoint on onnxruntime
  // (an imported backbone's ONNX file too), and the host cannot be sure which the engine will do.
  neighbours: true,
  evaluate: true,
  explain: true,
  'evaluate-explanations': true,
  'evaluate-counterfactuals': true,
  // Reads the checkpoint and writes it out as a model.
  exportOnnx: true,
  // index.bin only.
  overview: false,
  // index.bin, its neighbour graph and UMAP (usearch, no model).
  layout: false,
  mapPoints: false,
  outliers: false,
  exportAssignments: false,
  // Hashes and thumbnails of the images (sharp), with the neighbour graph; no model.
  duplicates: false,
};

/** Whether a view may send this request now. */
export function mayRequest(type: WorkRequestType, trusted: boolean): boolean {
  return trusted || !loadsModel[type];
}

/** VS Code's command that opens the workspace trust editor. */
export const manageTrustCommand = 'workbench.trust.manage';

/** Thrown, without reaching the engine, for a request that an untrusted workspace does not allow. */
export class TrustRequiredError extends Error {
  constructor(readonly request: WorkRequestType) {
    super(`"${request}" can load the run's model, which an untrusted workspace (Restricted Mode) does not allow. Trust the workspace to use it; browsing the run still works.`);
    this.name = 'TrustRequiredError';
  }
}

export type EngineRequester = Pick<EngineClient, 'request'>;

/** The engine as a view sees it: a request that would load a model while the workspace is untrusted never leaves. */
export function trustGatedEngine(engine: EngineRequester, isTrusted: () => boolean): EngineRequester {
  return {
    request(request, handlers) {
      if (!mayRequest(request.type, isTrusted())) return Promise.reject(new TrustRequiredError(request.type));
      return engine.request(request, handlers);
    },
  };
}
