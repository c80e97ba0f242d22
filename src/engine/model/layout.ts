// The network described once: its layers as data (networkLayout), and the walk through them (emitNetwork)
// that every graph of it follows: the training step, the explanation graphs and the ONNX export each only say
// how they build a layer (batch or running BatchNorm statistics, folded or not, which graph builder).

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

/** How one graph builds the network's pieces, on values of type T. */
export interface NetworkOps<T> {
  /** A 'same'-padded convolution and its BatchNorm. */
  convBatchNorm(x: T, layer: ConvLayer): T;
  relu(x: T): T;
  add(a: T, b: T): T;
  /** The last feature map averaged over its positions: the backbone features [N, F]. */
  pool(featureMap: T): T;
  /** The head's first linear layer and its BatchNorm. */
  linearBatchNorm(x: T, linear: string, batchNorm: string): T;
  linear(x: T, name: string): T;
  /** Rows scaled to unit length. */
  l2Normalize(x: T): T;
  /** Cosines of the (unit) rows with the (unit) prototypes: [N, K]. */
  prototypeScores(embedding: T): T;
}

/** The backbone on normalised NCHW images: its last feature map. Each block: relu(bn(conv(relu(bn(conv(x))))) + shortcut). */
export function emitBackbone<T>(spec: LayoutSpec, ops: NetworkOps<T>, images: T): T {
  const layout = networkLayout(spec);
  let x = layout.stem ? ops.relu(ops.convBatchNorm(images, layout.stem)) : images;
  for (const block of layout.blocks) {
    const { shortcut } = block;
    const residual = shortcut.kind === 'projection' ? ops.convBatchNorm(x, shortcut.layer) : shortcut.kind === 'identity' ? x : undefined;
    const second = ops.convBatchNorm(ops.relu(ops.convBatchNorm(x, block.first)), block.second);
    x = ops.relu(residual === undefined ? second : ops.add(second, residual));
  }
  return x;
}

/** The projection head and prototypes on features [N, F]: linear → BatchNorm → ReLU → linear → L2 normalisation, then the scores. */
export function emitHead<T>(ops: NetworkOps<T>, features: T): { embedding: T; scores: T } {
  const hidden = ops.relu(ops.linearBatchNorm(features, 'head.fc1', 'head.bn'));
  const embedding = ops.l2Normalize(ops.linear(hidden, 'head.fc2'));
  return { embedding, scores: ops.prototypeScores(embedding) };
}

/** The whole network; `atFeatureMap` may mark the last feature map (Grad-CAM's watch point) before it is pooled. */
export function emitNetwork<T>(spec: LayoutSpec, ops: NetworkOps<T>, images: T, atFeatureMap: (featureMap: T) => T = (map) => map): { featureMap: T; features: T; embedding: T; scores: T } {
  const featureMap = atFeatureMap(emitBackbone(spec, ops, images));
  const features = ops.pool(featureMap);
  return { featureMap, features, ...emitHead(ops, features) };
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
