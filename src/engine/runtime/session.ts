// Every onnxruntime session of the engine opens here, on the device that device.ts chose, behind the
// engine's own errors.

import type * as Ort from 'onnxruntime-node';
import type { DeviceKind } from '../../protocol/options';
import { OnnxModelError } from '../onnx/onnxError';
import { currentDevice, providersFor } from './device';
import { loadOrt } from './ortModule';

export { loadOrt };

export interface OrtOptions {
  /** Threads for one operator on the CPU (default: onnxruntime's choice, all cores). */
  threads?: number;
  /** A device other than the chosen one: tests compare providers, export checks run on the CPU. */
  device?: DeviceKind;
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
    /** Where it runs. */
    readonly device: DeviceKind,
  ) {}

  static async open(bytes: Uint8Array, file: string, options: OrtOptions = {}): Promise<OrtModel> {
    const ort = loadOrt();
    const device = options.device ?? currentDevice().device;
    try {
      const session = await ort.InferenceSession.create(bytes, {
        executionProviders: providersFor(device),
        graphOptimizationLevel: 'all',
        ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
      });
      return new OrtModel(file, session, device);
    } catch (error) {
      if (device !== 'cpu' && !/protobuf|parse|load model/i.test(firstLine(error))) {
        throw new OnnxModelError('unsupported', file, `onnxruntime cannot open ${file} on the ${device} device: ${firstLine(error)}. Use --device cpu (setting clusterLens.device: cpu) meanwhile, and please report this.`, {}, String(error));
      }
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
