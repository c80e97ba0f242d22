import type { ExportOnnxResult } from '../../protocol/engine';
// Writes a trained run as a self-contained ONNX model for inference elsewhere: backbone, projection head
// and prototypes, with every BatchNorm folded into the layer before it; or, for a frozen imported
// backbone, that backbone with the trained head appended.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { emitBackbone, emitHead, foldBatchNorm, scaleOutputs, type BatchNormParameters, type NetworkOps } from '../model/layout';
import type { ModelSpec } from '../model/model';
import { EngineError } from '../errors';
import { writeFileAtomic } from '../util/atomicFile';
import { readArchive } from '../util/tensorArchive';
import { imageInput, type OnnxGraph } from './graph';
import { OnnxModelError } from './onnxError';
import { DataType, AttributeType, appendToModel, encodeModel, type AttributeMessage, type NodeMessage, type TensorMessage, type ValueInfoMessage } from './schema';

/** Weights by the engine's variable names ([kh,kw,in,out] convolutions, [in,out] linear layers). */
export type WeightMap = Map<string, { shape: number[]; values: Float32Array }>;

export type { ExportOnnxResult } from '../../protocol/engine';

export const exportOpset = 17;
const irVersion = 8; // the IR that goes with opset 17

export const onnxDocumentation = [
  'Cluster Lens SwAV model.',
  'Input `images`: float32, NCHW [batch, channels, height, width], values in [0, 1] (pixel / 255), RGB or grey as trained; the batch size is dynamic, height and width are fixed at the training image size.',
  'Per-channel normalisation (x - mean) / std with the training set statistics is inside the graph (the Sub and Div after the input); do not normalise again.',
  'Outputs: `embedding` [batch, projectionDim], the L2-normalised projection; `prototype_scores` [batch, prototypes], cosine scores of the embedding against the prototypes (softmax of scores / temperature gives cluster probabilities; argmax is the cluster);',
  '`features` [batch, featureDim], backbone features after global average pooling (not normalised).',
  'BatchNorm layers are folded into the convolution or linear layer before them; convolutions pad as TensorFlow "same" padding does (extra row and column at the bottom and right).',
].join(' ');

/** TensorFlow's 'same' padding for one axis: output ceil(size / stride), the odd pixel at the end. */
export function samePadding(size: number, kernel: number, stride: number): { begin: number; end: number; output: number } {
  const output = Math.ceil(size / stride);
  const total = Math.max((output - 1) * stride + kernel - size, 0);
  const begin = Math.floor(total / 2);
  return { begin, end: total - begin, output };
}

/** The serialised ONNX model for an engine model's weights at a fixed square image size. */
export function buildOnnxModel(spec: ModelSpec, weights: WeightMap, options: { imageSizePx: number; metadata?: Record<string, string> }): Uint8Array {
  const graph = new GraphBuilder(weights);
  const size = options.imageSizePx;
  const channels = spec.channels;
  const perChannel = (values: number[]) => Float32Array.from(values);
  graph.constant('input.mean', [1, channels, 1, 1], perChannel(spec.inputMean));
  graph.constant('input.std', [1, channels, 1, 1], perChannel(spec.inputStd));
  graph.node('Sub', ['images', 'input.mean'], 'input.centred');
  graph.node('Div', ['input.centred', 'input.std'], 'input.normalized');

  const ops = graph.networkOps('', exportOpset, { 'input.normalized': size });
  emitHead(ops, ops.pool(emitBackbone(spec, ops, 'input.normalized')));

  const featureDim = spec.width * 2 ** (spec.blocksPerStage.length - 1);
  return encodeModel({
    irVersion,
    producerName: 'cluster-lens',
    producerVersion: '1',
    docString: onnxDocumentation,
    opsetImport: [{ domain: '', version: exportOpset }],
    metadataProps: Object.entries({
      'cluster-lens.format': '1',
      'cluster-lens.inputLayout': 'NCHW',
      'cluster-lens.inputRange': '[0, 1]',
      'cluster-lens.imageSizePx': String(size),
      'cluster-lens.spec': JSON.stringify(spec),
      ...options.metadata,
    }).map(([key, value]) => ({ key, value })),
    graph: {
      name: 'cluster_lens_swav',
      node: graph.nodes,
      initializer: graph.initializers,
      input: [tensorInfo('images', ['batch', channels, size, size], 'float32 NCHW in [0, 1]; normalisation is inside the graph')],
      output: [
        tensorInfo('embedding', ['batch', spec.projectionDim], 'L2-normalised projection'),
        tensorInfo('prototype_scores', ['batch', spec.prototypes], 'cosine scores against the prototypes'),
        tensorInfo('features', ['batch', featureDim], 'backbone features after global average pooling'),
      ],
    },
  });
}

function tensorInfo(name: string, dims: (number | string)[], docString: string): ValueInfoMessage {
  return {
    name,
    docString,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((dim) => (typeof dim === 'number' ? { dimValue: dim } : { dimParam: dim })) } } },
  };
}

/**
 * A frozen-backbone run as one ONNX model: the imported backbone, byte for byte, with the head's nodes,
 * weights and outputs appended to its graph (see appendToModel). The images input stays the backbone's
 * own, with its own layout and normalisation (recorded in the metadata).
 */
export function appendHeadToBackbone(backbone: { bytes: Uint8Array; graph: OnnxGraph; featureOutput: string }, head: { spec: ModelSpec; weights: WeightMap }, metadata: Record<string, string> = {}): Uint8Array {
  const taken = new Set([...backbone.graph.initializers.keys(), ...backbone.graph.inputs.map((i) => i.name), ...backbone.graph.nodes.flatMap((n) => n.outputs)]);
  for (const name of ['embedding', 'prototype_scores']) {
    if (taken.has(name)) throw new OnnxModelError('unsupported', backbone.graph.file, `The backbone ${backbone.graph.file} already has a value named '${name}'; rename it before exporting with a head.`);
  }
  const graph = new GraphBuilder(head.weights);
  const rank = backbone.graph.outputs.find((output) => output.name === backbone.featureOutput)?.dims?.length;
  let features = backbone.featureOutput;
  if (rank !== 2) {
    // A feature map [N, C, h, w]: average it, as OrtBackbone.features does.
    features = graph.node('Flatten', [graph.node('GlobalAveragePool', [features], 'cluster_lens.pool')], 'cluster_lens.features', [intAttr('axis', 1)]);
  }
  emitHead(graph.networkOps('cluster_lens.', backbone.graph.opset), features);
  const { spec } = head;
  return appendToModel(backbone.bytes, {
    docString: `Cluster Lens SwAV model: a frozen imported backbone followed by the Cluster Lens head. Input '${imageInput(backbone.graph).name}': the backbone's own input (NCHW); the pixels in [0, 1] are normalised by cluster-lens.inputMean / cluster-lens.inputStd first. Outputs: embedding, prototype_scores, and the backbone's own outputs.`,
    metadataProps: Object.entries({
      'cluster-lens.format': '1',
      'cluster-lens.frozenBackbone': path.basename(backbone.graph.file),
      'cluster-lens.inputMean': JSON.stringify(spec.inputMean),
      'cluster-lens.inputStd': JSON.stringify(spec.inputStd),
      ...metadata,
    }).map(([key, value]) => ({ key, value })),
    graph: {
      node: graph.nodes,
      initializer: graph.initializers,
      output: [tensorInfo('embedding', ['batch', spec.projectionDim], 'L2-normalised projection'), tensorInfo('prototype_scores', ['batch', spec.prototypes], 'cosine scores against the prototypes')],
    },
  });
}

function batchNormOf(weights: WeightMap, name: string): BatchNormParameters {
  const get = (suffix: string) => {
    const found = weights.get(`${name}.${suffix}`);
    if (!found) throw new EngineError('BAD_CHECKPOINT', `The checkpoint has no ${name}.${suffix}; it does not match its model description. Train again.`);
    return found.values;
  };
  return { gamma: get('gamma'), beta: get('beta'), mean: get('runningMean'), variance: get('runningVariance') };
}

/** A [in, out] linear layer with a BatchNorm after it, as a Gemm's B [in, out] and C [out]. */
function foldLinear(weight: Float32Array, bias: Float32Array, bn: BatchNormParameters): { weight: Float32Array; bias: Float32Array } {
  const { scale, bias: folded } = foldBatchNorm(bn, bias);
  return { weight: scaleOutputs(weight, scale), bias: folded };
}

class GraphBuilder {
  readonly nodes: NodeMessage[] = [];
  readonly initializers: TensorMessage[] = [];

  constructor(private readonly weights: WeightMap) {}

  weight(name: string): { shape: number[]; values: Float32Array } {
    const found = this.weights.get(name);
    if (!found) throw new EngineError('BAD_CHECKPOINT', `The checkpoint has no weight "${name}"; it does not match its model description. Train again.`);
    return found;
  }

  constant(name: string, dims: number[], values: Float32Array): string {
    const raw = new Uint8Array(values.length * 4);
    const view = new DataView(raw.buffer);
    values.forEach((value, i) => view.setFloat32(i * 4, value, true));
    this.initializers.push({ name, dims, dataType: DataType.FLOAT, rawData: raw });
    return name;
  }

  node(opType: string, inputs: string[], output: string, attribute: AttributeMessage[] = []): string {
    this.nodes.push({ name: output, opType, input: inputs, output: [output], attribute });
    return output;
  }

  /**
   * The network's pieces as plain ONNX nodes, every BatchNorm folded: the features, `embedding` and
   * `prototype_scores` keep those names (the model's outputs), the rest are named after their layers, behind
   * `prefix`. `sizes` gives the spatial size of the inputs convolutions read ('same' padding depends on it).
   */
  networkOps(prefix: string, opset: number, sizes: Record<string, number> = {}): NetworkOps<string> {
    const sizeOf = new Map(Object.entries(sizes));
    return {
      convBatchNorm: (x, layer) => {
        const { output, sizePx } = this.convBatchNorm(layer.conv, layer.batchNorm, x, sizeOf.get(x)!, layer.stride);
        sizeOf.set(output, sizePx);
        return output;
      },
      relu: (x) => {
        const output = this.node('Relu', [x], `${x}.relu`);
        sizeOf.set(output, sizeOf.get(x)!);
        return output;
      },
      add: (a, b) => {
        const output = this.node('Add', [a, b], `${a}.add`);
        sizeOf.set(output, sizeOf.get(a)!);
        return output;
      },
      pool: (x) => this.node('Flatten', [this.node('GlobalAveragePool', [x], 'backbone.pool')], 'features', [intAttr('axis', 1)]),
      linearBatchNorm: (x, linear, norm) => {
        const fc = this.weight(`${linear}.weight`);
        const { weight, bias } = foldLinear(fc.values, this.weight(`${linear}.bias`).values, batchNormOf(this.weights, norm));
        this.constant(`${prefix}${linear}.weight`, fc.shape, weight);
        this.constant(`${prefix}${linear}.bias`, [fc.shape[1]], bias);
        return this.node('Gemm', [x, `${prefix}${linear}.weight`, `${prefix}${linear}.bias`], `${prefix}${linear}`);
      },
      linear: (x, name) => {
        this.constant(`${prefix}${name}.weight`, this.weight(`${name}.weight`).shape, this.weight(`${name}.weight`).values);
        this.constant(`${prefix}${name}.bias`, this.weight(`${name}.bias`).shape, this.weight(`${name}.bias`).values);
        return this.node('Gemm', [x, `${prefix}${name}.weight`, `${prefix}${name}.bias`], `${prefix}${name}`);
      },
      l2Normalize: (x) => {
        const name = (suffix: string) => `${prefix}head.${suffix}`;
        // ReduceL2 takes its axes as an attribute up to opset 17 and as an input from opset 18.
        let norm: string;
        if (opset >= 18) {
          this.initializers.push({ name: name('normAxes'), dims: [1], dataType: DataType.INT64, int64Data: [1] });
          norm = this.node('ReduceL2', [x, name('normAxes')], name('norm'), [intAttr('keepdims', 1)]);
        } else {
          norm = this.node('ReduceL2', [x], name('norm'), [intsAttr('axes', [1]), intAttr('keepdims', 1)]);
        }
        this.constant(name('minimumNorm'), [], Float32Array.of(1e-12));
        return this.node('Div', [x, this.node('Max', [norm, name('minimumNorm')], name('safeNorm'))], 'embedding');
      },
      prototypeScores: (embedding) => {
        this.constant(`${prefix}prototypes`, this.weight('prototypes').shape, this.weight('prototypes').values);
        return this.node('Gemm', [embedding, `${prefix}prototypes`], 'prototype_scores', [intAttr('transB', 1)]);
      },
    };
  }

  /** A 'same'-padded convolution with its BatchNorm folded in, from [kh,kw,in,out] to ONNX's [out,in,kh,kw]. */
  convBatchNorm(convName: string, bnName: string, input: string, sizePx: number, stride: number): { output: string; sizePx: number } {
    const { shape, values } = this.weight(convName);
    const [kh, kw, inputs, outputs] = shape;
    const { scale, bias } = foldBatchNorm(batchNormOf(this.weights, bnName));
    const kernel = new Float32Array(values.length);
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let i = 0; i < inputs; i++)
          for (let o = 0; o < outputs; o++) kernel[((o * inputs + i) * kh + y) * kw + x] = values[((y * kw + x) * inputs + i) * outputs + o] * scale[o];
    this.constant(`${convName}.weight`, [outputs, inputs, kh, kw], kernel);
    this.constant(`${convName}.bias`, [outputs], bias);
    const rows = samePadding(sizePx, kh, stride);
    const columns = samePadding(sizePx, kw, stride);
    const output = this.node('Conv', [input, `${convName}.weight`, `${convName}.bias`], convName, [
      intsAttr('kernel_shape', [kh, kw]),
      intsAttr('strides', [stride, stride]),
      intsAttr('pads', [rows.begin, columns.begin, rows.end, columns.end]),
    ]);
    return { output, sizePx: rows.output };
  }
}

function intAttr(name: string, value: number): AttributeMessage {
  return { name, type: AttributeType.INT, i: value };
}

function intsAttr(name: string, values: number[]): AttributeMessage {
  return { name, type: AttributeType.INTS, ints: values };
}
