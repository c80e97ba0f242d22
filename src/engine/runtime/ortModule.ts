// onnxruntime-node, loaded on first use so that the engine starts (and says why) without it.
import type * as Ort from 'onnxruntime-node';
import { EngineError } from '../errors';

export type OrtModule = typeof Ort;
let ortModule: OrtModule | undefined;

/** Loads onnxruntime-node on first use, so the engine starts without it. */
export function loadOrt(): OrtModule {
  if (!ortModule) {
    try {
      ortModule = require('onnxruntime-node') as OrtModule;
    } catch (error) {
      throw new EngineError('BACKEND_UNAVAILABLE', `onnxruntime-node cannot be loaded (${(error as Error).message}). Reinstall the extension or run npm ci.`, String(error));
    }
  }
  return ortModule;
}

