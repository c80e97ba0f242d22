// A frozen imported backbone on onnxruntime: [0, 1] NHWC pixels in, one feature vector per image out.
import { resolveBackboneInput, toNchwInput, type BackboneInput, type BackboneOptions } from '../onnx/backboneInput';
import { parseOnnx, readOnnxFile, type OnnxGraph } from '../onnx/graph';
import { OnnxModelError } from '../onnx/onnxError';
import { OrtModel, type OrtArray, type OrtOptions } from '../runtime/session';
import { withoutWeightInputs } from '../onnx/schema';

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
    const model = await OrtModel.open(withoutWeightInputs(bytes, new Set(graph.initializers.keys())), graph.file, options);
    const dims = graph.outputs.find((output) => output.name === input.featureOutput)?.dims;
    const featureDim = dims?.length === 2 && typeof dims[1] === 'number' ? dims[1] : dims?.length === 4 && typeof dims[1] === 'number' ? dims[1] : undefined;
    return new OrtBackbone(graph, input, model, featureDim);
  }

  /** Where its features are computed. */
  get device() {
    return this.model.device;
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
