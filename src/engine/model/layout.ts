// The network's layers as data, so that every place that runs the network (tfjs training and eval, the
// explanations, the ONNX export and the ONNX training step) walks the same architecture.

/** `resnet`: a stem convolution, then basic blocks with shortcuts. `plain`: conv-conv blocks straight from
 * the image, no stem and no shortcuts (the network of the official small-image SwAV recipes and of our
 * PyTorch reference). */
export type Architecture = 'resnet' | 'plain';

export interface LayoutSpec {
  channels: number;
  stemStride: 1 | 2;
  width: number;
  blocksPerStage: number[];
  /** Absent in checkpoints written before it existed: those are all `resnet`. */
  architecture?: Architecture;
}

/** ε of every BatchNorm in the network (PyTorch's default; the checkpoints' running statistics were kept with it). */
export const batchNormEpsilon = 1e-5;

/** A BatchNorm's parameters and running statistics, per output channel. */
export interface BatchNormParameters {
  gamma: ArrayLike<number>;
  beta: ArrayLike<number>;
  mean: ArrayLike<number>;
  variance: ArrayLike<number>;
}

/**
 * Eval-mode BatchNorm folded into the layer before it: γ(x·w + b − μ)/√(σ² + ε) + β is x·(w·s) + s(b − μ) + β with
 * s = γ/√(σ² + ε). The layer's weights scale by s per output channel; `bias` is its own bias, if it has one.
 */
export function foldBatchNorm(batchNorm: BatchNormParameters, bias?: ArrayLike<number>): { scale: Float32Array; bias: Float32Array } {
  const outputs = batchNorm.gamma.length;
  // float32, as the weights it multiplies.
  const scale = new Float32Array(outputs);
  const folded = new Float32Array(outputs);
  for (let o = 0; o < outputs; o++) {
    scale[o] = batchNorm.gamma[o] / Math.sqrt(batchNorm.variance[o] + batchNormEpsilon);
    folded[o] = scale[o] * ((bias?.[o] ?? 0) - batchNorm.mean[o]) + batchNorm.beta[o];
  }
  return { scale, bias: folded };
}

/** Weights whose last axis is the output channel ([kh, kw, in, out] or [in, out]), each output scaled by `scale`. */
export function scaleOutputs(weights: Float32Array, scale: Float32Array): Float32Array {
  const outputs = scale.length;
  return weights.map((value, i) => value * scale[i % outputs]);
}

export interface ConvLayer {
  /** Variable names: `${conv}` is the [kh, kw, in, out] filter, `${batchNorm}.gamma` … its BatchNorm. */
  conv: string;
  batchNorm: string;
  kernel: number;
  stride: number;
  inChannels: number;
  outChannels: number;
}

export interface BlockLayout {
  prefix: string;
  /** conv → BatchNorm → ReLU */
  first: ConvLayer;
  /** conv → BatchNorm → (+ shortcut) → ReLU */
  second: ConvLayer;
  /** `identity` adds the block's input; `projection` adds a 1×1 conv + BatchNorm of it; `none` adds nothing. */
  shortcut: { kind: 'identity' } | { kind: 'projection'; layer: ConvLayer } | { kind: 'none' };
}

export interface NetworkLayout {
  /** conv → BatchNorm → ReLU before the blocks (resnet only). */
  stem?: ConvLayer;
  blocks: BlockLayout[];
  featureChannels: number;
}

export function networkLayout(spec: LayoutSpec): NetworkLayout {
  const plain = spec.architecture === 'plain';
  const layer = (name: string, batchNorm: string, kernel: number, stride: number, inChannels: number, outChannels: number): ConvLayer => ({ conv: name, batchNorm, kernel, stride, inChannels, outChannels });
  const stem = plain ? undefined : layer('stem.conv', 'stem.bn', 3, spec.stemStride, spec.channels, spec.width);
  let inChannels = plain ? spec.channels : spec.width;
  const blocks: BlockLayout[] = [];
  spec.blocksPerStage.forEach((count, stage) => {
    const outChannels = spec.width * 2 ** stage;
    for (let block = 0; block < count; block++) {
      const prefix = `stage${stage}.block${block}`;
      const stride = stage > 0 && block === 0 ? 2 : 1;
      let shortcut: BlockLayout['shortcut'] = { kind: 'identity' };
      if (plain) shortcut = { kind: 'none' };
      else if (stride !== 1 || inChannels !== outChannels) shortcut = { kind: 'projection', layer: layer(`${prefix}.shortcut.conv`, `${prefix}.shortcut.bn`, 1, stride, inChannels, outChannels) };
      blocks.push({
        prefix,
        first: layer(`${prefix}.conv1`, `${prefix}.bn1`, 3, stride, inChannels, outChannels),
        second: layer(`${prefix}.conv2`, `${prefix}.bn2`, 3, 1, outChannels, outChannels),
        shortcut,
      });
      inChannels = outChannels;
    }
  });
  return { stem, blocks, featureChannels: inChannels };
}

/** Every convolution of the layout, in forward order. */
export function convLayers(layout: NetworkLayout): ConvLayer[] {
  return [
    ...(layout.stem ? [layout.stem] : []),
    ...layout.blocks.flatMap((block) => [block.first, block.second, ...(block.shortcut.kind === 'projection' ? [block.shortcut.layer] : [])]),
  ];
}

/** Multiply-accumulates of one forward pass through the convolutions at `sizePx`. */
export function forwardConvMacs(layout: NetworkLayout, sizePx: number): number {
  let size = sizePx;
  let macs = 0;
  const conv = (layer: ConvLayer, input: number) => {
    const output = Math.ceil(input / layer.stride);
    macs += output * output * layer.kernel * layer.kernel * layer.inChannels * layer.outChannels;
    return output;
  };
  if (layout.stem) size = conv(layout.stem, size);
  for (const block of layout.blocks) {
    if (block.shortcut.kind === 'projection') conv(block.shortcut.layer, size);
    size = conv(block.second, conv(block.first, size));
  }
  return macs;
}
