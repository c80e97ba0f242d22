// onnxruntime-node, loaded on first use so that the engine starts (and says why) without it.
import type * as Ort from 'onnxruntime-node';
import { loadNative } from '../nativeModules';

export type OrtModule = typeof Ort;

/** Loads onnxruntime-node on first use; when it cannot load, the error names the platform and the fix. */
export function loadOrt(): OrtModule {
  return loadNative<OrtModule>('onnxruntime-node');
}
