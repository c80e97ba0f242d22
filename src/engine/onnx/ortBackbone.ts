// onnxruntime-node (CPU) behind the engine's own errors: opening a model and computing backbone features.

import type * as Ort from 'onnxruntime-node';
import { EngineError } from '../errors';
import { resolveBackboneInput, toNchwInput, type BackboneInput, type BackboneOptions } from './backboneInput';
import { parseOnnx, readOnnxFile, type OnnxGraph } from './graph';
import { OnnxModelError } from './onnxError';

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

/** A frozen backbone on onnxruntime: [0, 1] NHWC pixels in, one feature vector per image out. */
export class OrtBackbone {
  private constructor(
    readonly graph: OnnxGraph,
    readonly input: BackboneInput,
    private readonly model: OrtModel,
    /** Feature size, known once the first batch has run (or from the graph's output shape). */
    public featureDim: number | undefined,
  ) {}

  static async open(file: string, options: BackboneOptions & OrtOptions = {}): Promise<OrtBackbone> {
    const { bytes, graph } = await readOnnxFile(file);
    return OrtBackbone.fromBytes(bytes, graph, options);
  }

  static async fromBytes(bytes: Uint8Array, graph: OnnxGraph = parseOnnx(bytes, '(in memory)'), options: BackboneOptions & OrtOptions = {}): Promise<OrtBackbone> {
    const input = resolveBackboneInput(graph, options);
    const model = await OrtModel.open(bytes, graph.file, options);
    const dims = graph.outputs.find((output) => output.name === input.featureOutput)?.dims;
    const featureDim = dims?.length === 2 && typeof dims[1] === 'number' ? dims[1] : dims?.length === 4 && typeof dims[1] === 'number' ? dims[1] : undefined;
    return new OrtBackbone(graph, input, model, featureDim);
  }

  get file(): string {
    return this.graph.file;
  }

  /**
   * Features [count, F] of `count` images given as NHWC [0, 1] pixels with `channels` channels.
   * A 4-D output [N, C, h, w] is averaged over h and w, as a global average pool would.
   */
  async features(pixels: Float32Array, count: number, heightPx: number, widthPx: number, channels: number): Promise<Float32Array> {
    const { input } = this;
    if ((input.heightPx !== undefined && input.heightPx !== heightPx) || (input.widthPx !== undefined && input.widthPx !== widthPx)) {
      throw new OnnxModelError('unsupported', this.file, `The ONNX model ${this.file} takes ${input.heightPx}×${input.widthPx} images, not ${heightPx}×${widthPx}. Resize the images to the model's size.`);
    }
    const data = toNchwInput(pixels, count, heightPx, widthPx, channels, input);
    const result = (await this.model.run({ [input.name]: { data, dims: [count, input.channels, heightPx, widthPx] } }, [input.featureOutput]))[input.featureOutput];
    const pooled = poolFeatures(result, this.file);
    this.featureDim = pooled.dims;
    return pooled.data;
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
  }
}

/** [N, F] as is; [N, C, h, w] averaged over h, w. */
export function poolFeatures(result: OrtArray, file: string): { data: Float32Array; dims: number } {
  if (result.dims.length === 2) return { data: result.data, dims: result.dims[1] };
  if (result.dims.length === 4) {
    const [count, channels, height, width] = result.dims;
    const plane = height * width;
    const data = new Float32Array(count * channels);
    for (let i = 0; i < count * channels; i++) {
      let sum = 0;
      for (let p = 0; p < plane; p++) sum += result.data[i * plane + p];
      data[i] = sum / plane;
    }
    return { data, dims: channels };
  }
  throw new OnnxModelError('unsupported', file, `The feature output of ${file} has shape [${result.dims.join(', ')}]; Cluster Lens needs [batch, features] or [batch, channels, height, width]. Choose another output.`);
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0].trim();
}
