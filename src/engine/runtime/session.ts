// onnxruntime-node (CPU) behind the engine's own errors: opening a model and computing backbone features.

import type * as Ort from 'onnxruntime-node';
import { EngineError } from '../errors';
import { OnnxModelError } from '../onnx/onnxError';

export interface OrtOptions {
  /** Threads for one operator (default: onnxruntime's choice, all cores). */
  threads?: number;
}

type OrtModule = typeof Ort;
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

/** A float32 array and its dimensions, as onnxruntime returns them. */
export interface OrtArray {
  data: Float32Array;
  dims: number[];
}

/** One onnxruntime session; release it with dispose(). */
export class OrtModel {
  private constructor(
    readonly file: string,
    private readonly session: Ort.InferenceSession,
  ) {}

  static async open(bytes: Uint8Array, file: string, options: OrtOptions = {}): Promise<OrtModel> {
    const ort = loadOrt();
    try {
      const session = await ort.InferenceSession.create(bytes, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
      });
      return new OrtModel(file, session);
    } catch (error) {
      throw new OnnxModelError('corrupt', file, `onnxruntime cannot load the ONNX model ${file}: ${firstLine(error)}. Check that the export succeeded, or export it again.`, {}, String(error));
    }
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Runs the graph on float32 inputs and returns the requested outputs. */
  async run(inputs: Record<string, OrtArray>, outputs: string[]): Promise<Record<string, OrtArray>> {
    const ort = loadOrt();
    const feeds: Record<string, Ort.Tensor> = {};
    for (const [name, { data, dims }] of Object.entries(inputs)) feeds[name] = new ort.Tensor('float32', data, dims);
    let results: Ort.InferenceSession.ReturnType;
    try {
      results = await this.session.run(feeds, outputs);
    } catch (error) {
      const shapes = Object.entries(inputs).map(([name, { dims }]) => `${name} [${dims.join(', ')}]`).join(', ');
      throw new OnnxModelError('unsupported', this.file, `onnxruntime failed to run ${this.file} on ${shapes}: ${firstLine(error)}.`, {}, String(error));
    }
    const out: Record<string, OrtArray> = {};
    for (const name of outputs) {
      const tensor = results[name];
      out[name] = { data: tensor.data as Float32Array, dims: tensor.dims.map(Number) };
    }
    for (const tensor of Object.values(results)) tensor.dispose();
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

export function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0].trim();
}
