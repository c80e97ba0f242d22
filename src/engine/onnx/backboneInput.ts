// What an imported backbone expects of its images, shared by onnxruntime's feature path and the explanation
// graphs, so both see exactly the same numbers.

import { imageInput, type OnnxGraph } from './graph';
import { OnnxModelError } from './onnxError';

export interface BackboneOptions {
  /**
   * Per-channel normalisation applied to [0, 1] pixels before the graph: (x − mean) / std.
   * Default none, i.e. the graph gets [0, 1] values. ImageNet-trained models usually want
   * mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225].
   */
  inputMean?: number[];
  inputStd?: number[];
  /** Which graph output holds the features; default `features` when the graph has one, else the first output. */
  featureOutput?: string;
}

/** torchvision's ImageNet normalisation, what ImageNet-trained exports (torchvision, DINO, timm) expect. */
export const imagenetNormalization = { inputMean: [0.485, 0.456, 0.406], inputStd: [0.229, 0.224, 0.225] };

export interface BackboneInput {
  name: string;
  /** Channels the graph wants; grey images are repeated to 3, colour ones turned to luma for 1. */
  channels: number;
  /** Fixed input size, when the graph fixes one. */
  heightPx?: number;
  widthPx?: number;
  mean: number[];
  std: number[];
  featureOutput: string;
}

/**
 * The fixed input sizes a backbone may declare: the image sizes a run can train on (config.ts checks imageSizePx
 * against the same range; keep the two in step). A size outside it is the model's, and is named as the model's.
 */
export const backboneInputSizePx = { min: 8, max: 512 } as const;

export function resolveBackboneInput(graph: OnnxGraph, options: BackboneOptions = {}): BackboneInput {
  const input = imageInput(graph);
  const fixed = [input.heightPx, input.widthPx].filter((size): size is number => size !== undefined);
  if (fixed.some((size) => !Number.isInteger(size) || size < backboneInputSizePx.min || size > backboneInputSizePx.max)) {
    const shown = (size: number | undefined) => (size === undefined ? '?' : String(size));
    throw new OnnxModelError(
      'unsupported',
      graph.file,
      `The ONNX model ${graph.file} fixes its input '${input.name}' at ${shown(input.heightPx)}×${shown(input.widthPx)} px (height × width); Cluster Lens works on images from ${backboneInputSizePx.min} to ${backboneInputSizePx.max} px. Export the model with an input size in that range, or with a dynamic one (dynamic_axes in torch.onnx.export).`,
    );
  }
  const mean = options.inputMean ?? new Array<number>(input.channels).fill(0);
  const std = options.inputStd ?? new Array<number>(input.channels).fill(1);
  if (mean.length !== input.channels || std.length !== input.channels || std.some((value) => !(value > 0))) {
    throw new OnnxModelError('unsupported', graph.file, `The normalisation given for ${graph.file} needs ${input.channels} means and ${input.channels} positive standard deviations (got mean [${mean.join(', ')}], std [${std.join(', ')}]).`);
  }
  const names = graph.outputs.map((output) => output.name);
  const featureOutput = options.featureOutput ?? (names.includes('features') ? 'features' : names[0]);
  if (!names.includes(featureOutput)) {
    throw new OnnxModelError('unsupported', graph.file, `The ONNX model ${graph.file} has no output '${featureOutput}'; its outputs are ${names.join(', ')}.`);
  }
  return { ...input, mean, std, featureOutput };
}

const lumaWeights = [0.299, 0.587, 0.114];

/**
 * NHWC pixels in [0, 1] with `sourceChannels` channels → the graph's NCHW input, normalised.
 * One pass over the data; grey is repeated to RGB, RGB is reduced to luma for a grey model.
 */
export function toNchwInput(pixels: Float32Array, count: number, heightPx: number, widthPx: number, sourceChannels: number, input: BackboneInput): Float32Array {
  const channels = input.channels;
  const plane = heightPx * widthPx;
  const out = new Float32Array(count * channels * plane);
  for (let n = 0; n < count; n++) {
    const source = n * plane * sourceChannels;
    const target = n * channels * plane;
    for (let p = 0; p < plane; p++) {
      const at = source + p * sourceChannels;
      for (let c = 0; c < channels; c++) {
        let value: number;
        if (sourceChannels === channels) value = pixels[at + c];
        else if (sourceChannels === 1) value = pixels[at];
        else value = lumaWeights[0] * pixels[at] + lumaWeights[1] * pixels[at + 1] + lumaWeights[2] * pixels[at + 2];
        out[target + c * plane + p] = (value - input.mean[c]) / input.std[c];
      }
    }
  }
  return out;
}
