// An ONNX backbone rebuilt from tfjs operations, so autodiff (Grad-CAM, counterfactuals) reaches the input.
// Image values are kept NHWC as tfjs convolutions want; every node says whether it needs ONNX's NCHW order,
// and values are transposed only where one does (Flatten, Reshape, mixed broadcasts).

import * as tf from '@tensorflow/tfjs-core';
import { resolveBackboneInput, type BackboneInput, type BackboneOptions } from './backboneInput';
import { floatAttribute, intAttribute, intsAttribute, stringAttribute, type OnnxConstant, type OnnxGraph, type OnnxNode } from './graph';
import { describeNode, OnnxModelError } from './onnxError';

export interface TfjsBackbone {
  readonly graph: OnnxGraph;
  readonly input: BackboneInput;
  /** Converted weights by name; freed by dispose(). */
  readonly weights: Map<string, tf.Tensor>;
  /**
   * Features [N, F] of NHWC [0, 1] images, the same numbers onnxruntime gives (a 4-D feature output is
   * averaged over height and width). Differentiable with respect to the images.
   */
  features(images: tf.Tensor4D): tf.Tensor2D;
  /** Graph values by name (on the path to the features, or converted via `outputs`); 4-D values come back NHWC, the rest in ONNX's layout. */
  values(images: tf.Tensor4D, names: string[]): tf.Tensor[];
  /**
   * Features computed from an intermediate value (4-D NHWC, as `values` returns it) instead of the images:
   * the gradient of a score with respect to a feature map, as Grad-CAM needs.
   */
  featuresFrom(name: string, value: tf.Tensor): tf.Tensor2D;
  dispose(): void;
}

/** The operators the converter knows, for messages. */
export const supportedOperators = [
  'Conv',
  'BatchNormalization',
  'Relu',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'MaxPool',
  'GlobalAveragePool',
  'ReduceMean',
  'Flatten',
  'Gemm',
  'MatMul',
  'Reshape',
  'Constant',
  'Identity',
  'Dropout',
] as const;

/** A value while the graph runs: `nhwc` marks a 4-D tensor held NHWC that ONNX means as NCHW. */
interface Value {
  tensor: tf.Tensor;
  nhwc: boolean;
}

type Environment = Map<string, Value>;
type Step = (environment: Environment) => void;

// NCHW axis → NHWC axis.
const nhwcAxis = [0, 3, 1, 2];

/**
 * Converts the part of a parsed graph that the feature output (and any extra `outputs`, e.g. a feature map
 * for Grad-CAM) depends on; throws an OnnxModelError naming the first unsupported operator and node.
 */
export function convertToTfjs(graph: OnnxGraph, options: BackboneOptions & { outputs?: string[] } = {}): TfjsBackbone {
  const input = resolveBackboneInput(graph, options);
  const weights = new Map<string, tf.Tensor>();
  const constants = new Map<string, OnnxConstant>(graph.initializers);
  const unsupported: { node: OnnxNode; reason?: string }[] = [];
  const steps: { node: OnnxNode; run: Step }[] = [];
  const compiler = new NodeCompiler(graph, constants, weights);
  const nodes = dependencies(graph.nodes, [input.featureOutput, ...(options.outputs ?? [])]).map((position) => graph.nodes[position]);
  // Unknown operators are reported before any tensor is made.
  const known = new Set<string>(supportedOperators);
  for (const node of nodes) if (!known.has(node.opType) || (node.domain && node.domain !== 'ai.onnx')) unsupported.push({ node });
  try {
    for (const node of unsupported.length ? [] : nodes) {
      try {
        const step = compiler.compile(node);
        if (step) steps.push({ node, run: step });
        // Float weights become tensors now, so `weights` is complete and calls allocate nothing lasting.
        for (const name of node.inputs) if (constants.get(name)?.kind === 'float' && !compiler.baked.has(name)) compiler.constantValue(name);
      } catch (error) {
        if (!(error instanceof UnsupportedNode)) throw error;
        unsupported.push({ node, reason: error.reason });
      }
    }
  } catch (error) {
    tf.dispose([...weights.values()]);
    throw error;
  }
  if (unsupported.length > 0) {
    tf.dispose([...weights.values()]);
    const [first] = unsupported;
    const others = [...new Set(unsupported.slice(1).map(({ node }) => node.opType))].filter((op) => op !== first.node.opType);
    const what = first.reason ? `${describeNode(first.node)}: ${first.reason}` : `the operator ${first.node.opType}${first.node.domain ? ` of domain ${first.node.domain}` : ''} (${describeNode(first.node)}), which it cannot convert`;
    throw new OnnxModelError(
      'unsupported',
      graph.file,
      `Cluster Lens cannot turn the ONNX model ${graph.file} into TensorFlow.js operations for gradient explanations: ${what}` +
        `${unsupported.length > 1 ? `; ${unsupported.length - 1} more node(s) too${others.length ? ` (${others.join(', ')})` : ''}` : ''}. ` +
        `Supported operators: ${supportedOperators.join(', ')}. onnxruntime can still compute the model's features (frozen backbone).`,
      { operator: first.node.opType, node: first.node.name },
    );
  }

  const weightSet = () => new Set(weights.values());
  /** Steps needed for `names`, in graph order. */
  const plan = (names: string[], from?: string): Step[] => dependencies(steps.map(({ node }) => node), names, from).map((position) => steps[position].run);
  const plans = new Map<string, Step[]>();

  /** Runs the steps from one known value (the graph input, or an intermediate one) to `names`. */
  const run = (start: string, value: Value, names: string[]): tf.Tensor[] =>
    tf.tidy(() => {
      const key = `${start}\u0000${names.join('\u0000')}`;
      if (!plans.has(key)) plans.set(key, plan(names, start === input.name ? undefined : start));
      const environment: Environment = new Map([[start, value]]);
      for (const step of plans.get(key)!) step(environment);
      const owned = weightSet();
      return names.map((name) => {
        const value = environment.get(name) ?? compiler.constantValue(name);
        if (!value) throw new OnnxModelError('unsupported', graph.file, `'${name}' is not a value of ${graph.file} that the features depend on; name it in \`outputs\` when converting.`);
        // A weight returned as is would be freed by the caller; hand out a copy.
        return owned.has(value.tensor) ? tf.clone(value.tensor) : value.tensor;
      });
    });

  const values = (images: tf.Tensor4D, names: string[]): tf.Tensor[] => tf.tidy(() => run(input.name, { tensor: graphInput(images, input, graph.file), nhwc: true }, names));
  const pooled = (output: tf.Tensor): tf.Tensor2D => {
    if (output.rank === 2) return output as tf.Tensor2D;
    // 4-D values come back NHWC: average over height and width.
    if (output.rank === 4) return tf.mean(output, [1, 2]) as tf.Tensor2D;
    throw new OnnxModelError('unsupported', graph.file, `The feature output of ${graph.file} has shape [${output.shape.join(', ')}]; Cluster Lens needs [batch, features] or [batch, channels, height, width].`);
  };

  return {
    graph,
    input,
    weights,
    values,
    features: (images) => tf.tidy(() => pooled(values(images, [input.featureOutput])[0])),
    featuresFrom: (name, value) => tf.tidy(() => pooled(run(name, { tensor: value, nhwc: value.rank === 4 }, [input.featureOutput])[0])),
    dispose: () => {
      tf.dispose([...weights.values()]);
      weights.clear();
    },
  };
}

/** Positions of the nodes `outputs` depend on, in graph order: branches to other outputs are left out, and so is what `from` depends on. */
function dependencies(nodes: OnnxNode[], outputs: string[], from?: string): number[] {
  const producer = new Map<string, number>();
  nodes.forEach((node, position) => node.outputs.forEach((output) => output && producer.set(output, position)));
  const needed = new Set<number>();
  const pending = [...outputs];
  while (pending.length) {
    const name = pending.pop()!;
    // A value given from outside is not recomputed, nor is anything behind it.
    const position = name === from ? undefined : producer.get(name);
    if (position === undefined || needed.has(position)) continue;
    needed.add(position);
    pending.push(...nodes[position].inputs.filter(Boolean));
  }
  return [...needed].sort((a, b) => a - b);
}

/** [0, 1] NHWC pixels → the graph's input: channels adapted, then (x − mean) / std. */
function graphInput(images: tf.Tensor4D, input: BackboneInput, file: string): tf.Tensor4D {
  const [, height, width, channels] = images.shape;
  if ((input.heightPx !== undefined && input.heightPx !== height) || (input.widthPx !== undefined && input.widthPx !== width)) {
    throw new OnnxModelError('unsupported', file, `The ONNX model ${file} takes ${input.heightPx}×${input.widthPx} images, not ${height}×${width}. Resize the images to the model's size.`);
  }
  let x: tf.Tensor4D = images;
  if (channels === 1 && input.channels === 3) x = tf.tile(images, [1, 1, 1, 3]);
  else if (channels === 3 && input.channels === 1) x = tf.sum(tf.mul(images, tf.tensor1d([0.299, 0.587, 0.114])), 3, true);
  const identity = input.mean.every((m) => m === 0) && input.std.every((s) => s === 1);
  return identity ? x : (tf.div(tf.sub(x, tf.tensor1d(input.mean)), tf.tensor1d(input.std)) as tf.Tensor4D);
}

class UnsupportedNode extends Error {
  constructor(readonly reason?: string) {
    super(reason ?? 'unsupported');
  }
}

class NodeCompiler {
  /** Weights the last compiled node folded into tensors of its own (a transposed filter, a BatchNorm scale). */
  baked = new Set<string>();

  constructor(
    private readonly graph: OnnxGraph,
    private readonly constants: Map<string, OnnxConstant>,
    private readonly weights: Map<string, tf.Tensor>,
  ) {}

  /** A float constant as a (kept) tensor in ONNX layout, made once. */
  constantValue(name: string): Value | undefined {
    const constant = this.constants.get(name);
    if (!constant) return undefined;
    let tensor = this.weights.get(name);
    if (!tensor) {
      // Kept: this may run inside the graph's tidy, and the tensor must outlive it.
      tensor = tf.keep(constant.kind === 'float' ? tf.tensor(constant.data, constant.dims) : tf.tensor(constant.data, constant.dims, 'int32'));
      this.weights.set(name, tensor);
    }
    return { tensor, nhwc: false };
  }

  private keep(name: string, make: () => tf.Tensor): tf.Tensor {
    // Kept: the conversion may run inside a caller's tidy (a frozen run converts on first use), and weights outlive it.
    const tensor = tf.keep(tf.tidy(make));
    this.weights.get(name)?.dispose();
    this.weights.set(name, tensor);
    return tensor;
  }

  private floatConstant(node: OnnxNode, position: number, what: string, rank?: number): OnnxConstant & { kind: 'float' } {
    const constant = this.constants.get(node.inputs[position] ?? '');
    if (!constant || constant.kind !== 'float') throw new UnsupportedNode(`its ${what} ('${node.inputs[position] ?? ''}') must be float weights stored in the model, not computed in the graph`);
    if (rank !== undefined && constant.dims.length !== rank) throw new UnsupportedNode(`its ${what} has shape [${constant.dims.join(', ')}], expected ${rank} dimensions`);
    this.baked.add(node.inputs[position]);
    return constant;
  }

  private intConstant(node: OnnxNode, position: number, what: string): number[] {
    const constant = this.constants.get(node.inputs[position] ?? '');
    if (!constant || constant.kind !== 'int') throw new UnsupportedNode(`its ${what} ('${node.inputs[position] ?? ''}') is computed in the graph; export it with a fixed ${what} (torch.flatten(x, 1) rather than x.view(x.size(0), -1), for example)`);
    return constant.data;
  }

  private get(environment: Environment, name: string, node: OnnxNode): Value {
    const value = environment.get(name) ?? this.constantValue(name);
    if (!value) throw new OnnxModelError('unsupported', this.graph.file, `${describeNode(node)} in ${this.graph.file} reads '${name}', which the converted graph does not produce.`, { operator: node.opType, node: node.name });
    return value;
  }

  /** Returns the node's step, undefined for compile-time constants, or throws UnsupportedNode. */
  compile(node: OnnxNode): Step | undefined {
    this.baked = new Set();
    if (node.domain && node.domain !== 'ai.onnx') throw new UnsupportedNode();
    const [output] = node.outputs;
    const set = (environment: Environment, value: Value) => environment.set(output, value);
    const input = (environment: Environment, position = 0) => this.get(environment, node.inputs[position], node);
    switch (node.opType) {
      case 'Identity':
      case 'Dropout': {
        if (node.outputs.length > 1 && node.outputs[1]) throw new UnsupportedNode('its mask output is not supported');
        // torch.onnx.export shares a weight twice through Identity (a folded Conv bias, say): still a constant.
        const constant = this.constants.get(node.inputs[0]);
        if (constant) {
          this.constants.set(output, { ...constant, name: output });
          return undefined;
        }
        return (environment) => set(environment, input(environment));
      }
      case 'Relu':
        return (environment) => {
          const x = input(environment);
          set(environment, { tensor: tf.relu(x.tensor), nhwc: x.nhwc });
        };
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div': {
        const op = { Add: tf.add, Sub: tf.sub, Mul: tf.mul, Div: tf.div }[node.opType];
        return (environment) => {
          const [a, b] = alignLayouts(input(environment, 0), input(environment, 1));
          set(environment, { tensor: op(a.tensor, b.tensor), nhwc: a.nhwc });
        };
      }
      case 'Constant':
        this.constants.set(output, constantNodeValue(node));
        return undefined;
      case 'Conv':
        return this.conv(node);
      case 'BatchNormalization':
        return this.batchNormalization(node);
      case 'MaxPool':
        return this.maxPool(node);
      case 'GlobalAveragePool':
        return (environment) => set(environment, { tensor: tf.mean(asNhwc(input(environment)), [1, 2], true), nhwc: true });
      case 'ReduceMean':
        return this.reduceMean(node);
      case 'Flatten': {
        const axisAttribute = intAttribute(node, 'axis', 1);
        return (environment) => {
          const x = asOnnx(input(environment));
          const axis = axisAttribute < 0 ? axisAttribute + x.rank : axisAttribute;
          const outer = x.shape.slice(0, axis).reduce((p, d) => p * d, 1);
          set(environment, { tensor: tf.reshape(x, [outer, -1]), nhwc: false });
        };
      }
      case 'Gemm':
        return this.gemm(node);
      case 'MatMul':
        return (environment) => set(environment, { tensor: matMul(asOnnx(input(environment, 0)), asOnnx(input(environment, 1)), node, this.graph.file), nhwc: false });
      case 'Reshape': {
        const shape = this.intConstant(node, 1, 'shape');
        const allowZero = intAttribute(node, 'allowzero', 0) === 1;
        return (environment) => {
          const x = asOnnx(input(environment));
          const target = shape.map((dim, i) => (dim === 0 && !allowZero ? x.shape[i] : dim));
          set(environment, { tensor: tf.reshape(x, target), nhwc: false });
        };
      }
      default:
        throw new UnsupportedNode();
    }
  }

  private conv(node: OnnxNode): Step {
    const weight = this.floatConstant(node, 1, 'weight', 4);
    const [outChannels, inPerGroup, kh, kw] = weight.dims;
    const group = intAttribute(node, 'group', 1);
    const strides = intsAttribute(node, 'strides', [1, 1]) as [number, number];
    const dilations = intsAttribute(node, 'dilations', [1, 1]) as [number, number];
    if (strides.length !== 2) throw new UnsupportedNode(`only 2-D convolutions are supported (strides [${strides.join(', ')}])`);
    if ((dilations[0] !== 1 || dilations[1] !== 1) && (strides[0] !== 1 || strides[1] !== 1)) throw new UnsupportedNode('dilated convolutions with strides above 1 are not supported');
    const depthwise = group > 1 && inPerGroup === 1 && outChannels % group === 0;
    if (group !== 1 && !depthwise) throw new UnsupportedNode(`grouped convolutions (group=${group}) are supported only as depthwise (one input channel per group)`);
    const name = `${node.name || node.outputs[0]}.filter`;
    const filter = this.keep(name, () => {
      const w = tf.tensor4d(weight.data, [outChannels, inPerGroup, kh, kw]);
      // [out, in, kh, kw] → [kh, kw, in, out]; depthwise: [group·m, 1, kh, kw] → [kh, kw, group, m].
      return depthwise ? tf.reshape(tf.transpose(w, [2, 3, 1, 0]), [kh, kw, group, outChannels / group]) : tf.transpose(w, [2, 3, 1, 0]);
    }) as tf.Tensor4D;
    const bias = node.inputs[2] ? this.keep(`${name}.bias`, () => tf.tensor1d(this.floatConstant(node, 2, 'bias', 1).data)) : undefined;
    const padding = paddingOf(node, [kh, kw], dilations);
    return (environment) => {
      const x = asNhwc(this.get(environment, node.inputs[0], node)) as tf.Tensor4D;
      const pad = padding(x.shape[1], x.shape[2], strides);
      let y = depthwise ? tf.depthwiseConv2d(x, filter, strides, pad, 'NHWC', dilations) : tf.conv2d(x, filter, strides, pad, 'NHWC', dilations);
      if (bias) y = tf.add(y, bias);
      environment.set(node.outputs[0], { tensor: y, nhwc: true });
    };
  }

  private batchNormalization(node: OnnxNode): Step {
    if (intAttribute(node, 'training_mode', 0) === 1 || node.outputs.slice(1).some(Boolean)) throw new UnsupportedNode('training-mode BatchNormalization is not supported; export the model in eval mode');
    const epsilon = floatAttribute(node, 'epsilon', 1e-5);
    const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((position, i) => this.floatConstant(node, position, ['scale', 'bias', 'mean', 'variance'][i], 1).data);
    const channels = gamma.length;
    // Inference BatchNorm is an affine map per channel: y = x·s + t, s = γ/√(σ²+ε), t = β − μ·s.
    const scale = new Float32Array(channels);
    const shift = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      scale[c] = gamma[c] / Math.sqrt(variance[c] + epsilon);
      shift[c] = beta[c] - mean[c] * scale[c];
    }
    const name = node.name || node.outputs[0];
    const s = this.keep(`${name}.scale`, () => tf.tensor1d(scale));
    const t = this.keep(`${name}.shift`, () => tf.tensor1d(shift));
    return (environment) => {
      const x = this.get(environment, node.inputs[0], node);
      let value: Value;
      if (x.nhwc || x.tensor.rank === 4) value = { tensor: tf.add(tf.mul(asNhwc(x), s), t), nhwc: true };
      else if (x.tensor.rank === 2) value = { tensor: tf.add(tf.mul(x.tensor, s), t), nhwc: false };
      else {
        // [N, C, …]: channels on axis 1.
        const shape = [channels, ...new Array<number>(x.tensor.rank - 2).fill(1)];
        value = { tensor: tf.add(tf.mul(x.tensor, tf.reshape(s, shape)), tf.reshape(t, shape)), nhwc: false };
      }
      environment.set(node.outputs[0], value);
    };
  }

  private maxPool(node: OnnxNode): Step {
    if (node.outputs.length > 1 && node.outputs[1]) throw new UnsupportedNode('its Indices output is not supported');
    const kernel = intsAttribute(node, 'kernel_shape', []) as [number, number];
    if (kernel.length !== 2) throw new UnsupportedNode(`only 2-D pooling is supported (kernel_shape [${kernel.join(', ')}])`);
    const dilations = intsAttribute(node, 'dilations', [1, 1]);
    if (dilations.some((d) => d !== 1)) throw new UnsupportedNode('dilated max pooling is not supported');
    if (intAttribute(node, 'ceil_mode', 0) !== 0) throw new UnsupportedNode('ceil_mode=1 is not supported; export with ceil_mode=False');
    const strides = intsAttribute(node, 'strides', [1, 1]) as [number, number];
    const padding = paddingOf(node, kernel, [1, 1]);
    return (environment) => {
      const x = asNhwc(this.get(environment, node.inputs[0], node)) as tf.Tensor4D;
      environment.set(node.outputs[0], { tensor: tf.maxPool(x, kernel, strides, padding(x.shape[1], x.shape[2], strides)), nhwc: true });
    };
  }

  private reduceMean(node: OnnxNode): Step {
    // Before opset 18 the axes are an attribute; from 18 an optional input.
    const axesAttribute = node.inputs[1] ? this.intConstant(node, 1, 'axes') : intsAttribute(node, 'axes', []);
    const keepDims = intAttribute(node, 'keepdims', 1) === 1;
    if (axesAttribute.length === 0 && intAttribute(node, 'noop_with_empty_axes', 0) === 1) {
      return (environment) => environment.set(node.outputs[0], this.get(environment, node.inputs[0], node));
    }
    return (environment) => {
      const x = this.get(environment, node.inputs[0], node);
      const rank = x.tensor.rank;
      const axes = (axesAttribute.length ? axesAttribute : Array.from({ length: rank }, (_, i) => i)).map((axis) => (axis < 0 ? axis + rank : axis));
      const value: Value =
        x.nhwc && keepDims
          ? { tensor: tf.mean(x.tensor, axes.map((axis) => nhwcAxis[axis]), true), nhwc: true }
          : { tensor: tf.mean(asOnnx(x), axes, keepDims), nhwc: false };
      environment.set(node.outputs[0], value);
    };
  }

  private gemm(node: OnnxNode): Step {
    const alpha = floatAttribute(node, 'alpha', 1);
    const beta = floatAttribute(node, 'beta', 1);
    const transA = intAttribute(node, 'transA', 0) === 1;
    const transB = intAttribute(node, 'transB', 0) === 1;
    return (environment) => {
      const a = asOnnx(this.get(environment, node.inputs[0], node));
      const b = asOnnx(this.get(environment, node.inputs[1], node));
      if (a.rank !== 2 || b.rank !== 2) {
        throw new OnnxModelError('unsupported', this.graph.file, `${describeNode(node)} in ${this.graph.file} multiplies shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}]; Gemm needs 2-D inputs.`, { operator: node.opType, node: node.name });
      }
      let y = tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, transA, transB) as tf.Tensor;
      if (alpha !== 1) y = tf.mul(y, alpha);
      if (node.inputs[2]) {
        const c = asOnnx(this.get(environment, node.inputs[2], node));
        y = tf.add(y, beta === 1 ? c : tf.mul(c, beta));
      }
      environment.set(node.outputs[0], { tensor: y, nhwc: false });
    };
  }
}

/**
 * The padding of a Conv or MaxPool for an input of height × width: tfjs 'same' for SAME_UPPER (TensorFlow
 * also puts the odd pixel last), explicit [top, bottom] / [left, right] pads otherwise.
 */
function paddingOf(node: OnnxNode, kernel: number[], dilations: number[]) {
  const autoPad = stringAttribute(node, 'auto_pad', 'NOTSET');
  const pads = intsAttribute(node, 'pads', [0, 0, 0, 0]);
  if (pads.length !== 4) throw new UnsupportedNode(`pads [${pads.join(', ')}] are not 2-D`);
  return (height: number, width: number, strides: number[]): 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]] => {
    if (autoPad === 'SAME_UPPER') return 'same';
    if (autoPad === 'VALID') return 'valid';
    if (autoPad === 'SAME_LOWER') {
      const lower = (size: number, axis: number) => {
        const span = (kernel[axis] - 1) * dilations[axis] + 1;
        const total = Math.max((Math.ceil(size / strides[axis]) - 1) * strides[axis] + span - size, 0);
        return [Math.ceil(total / 2), Math.floor(total / 2)] as [number, number];
      };
      return [[0, 0], lower(height, 0), lower(width, 1), [0, 0]];
    }
    const [top, left, bottom, right] = pads;
    if (top === 0 && left === 0 && bottom === 0 && right === 0) return 'valid';
    return [[0, 0], [top, bottom], [left, right], [0, 0]];
  };
}

function constantNodeValue(node: OnnxNode): OnnxConstant {
  const name = node.outputs[0];
  const value = node.attributes.get('value');
  if (value && typeof value === 'object' && !Array.isArray(value)) return { ...value, name };
  const floatValue = node.attributes.get('value_float');
  if (typeof floatValue === 'number') return { name, dims: [], kind: 'float', data: Float32Array.of(floatValue) };
  const floats = node.attributes.get('value_floats');
  if (Array.isArray(floats)) return { name, dims: [floats.length], kind: 'float', data: Float32Array.from(floats) };
  const intValue = node.attributes.get('value_int');
  if (typeof intValue === 'number') return { name, dims: [], kind: 'int', data: [intValue] };
  const ints = node.attributes.get('value_ints');
  if (Array.isArray(ints)) return { name, dims: [ints.length], kind: 'int', data: ints };
  throw new UnsupportedNode('only tensor, float and int constants are supported');
}

function asNhwc(value: Value): tf.Tensor {
  if (value.nhwc) return value.tensor;
  if (value.tensor.rank !== 4) throw new Error(`expected a 4-D value, got shape [${value.tensor.shape.join(', ')}]`);
  return tf.transpose(value.tensor, [0, 2, 3, 1]);
}

function asOnnx(value: Value): tf.Tensor {
  return value.nhwc ? tf.transpose(value.tensor, [0, 3, 1, 2]) : value.tensor;
}

/** Brings two operands of a broadcasting op into one layout (NHWC when either is). */
function alignLayouts(a: Value, b: Value): [Value, Value] {
  if (a.nhwc === b.nhwc) return [a, b];
  const toNhwc = (value: Value): Value => {
    if (value.nhwc) return value;
    const { shape } = value.tensor;
    if (shape.length > 4) throw new Error(`cannot broadcast shape [${shape.join(', ')}] against an image tensor`);
    // Numpy broadcasting aligns trailing axes: pad to [1…, d] as NCHW, then reorder like the image.
    const padded = tf.reshape(value.tensor, [...new Array<number>(4 - shape.length).fill(1), ...shape]);
    return { tensor: tf.transpose(padded, [0, 2, 3, 1]), nhwc: true };
  };
  return [toNhwc(a), toNhwc(b)];
}

function matMul(a: tf.Tensor, b: tf.Tensor, node: OnnxNode, file: string): tf.Tensor {
  if (a.rank === 2 && b.rank === 2) return tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D);
  if (a.rank > 2 && b.rank === 2) {
    const rows = tf.reshape(a, [-1, a.shape[a.rank - 1] as number]) as tf.Tensor2D;
    return tf.reshape(tf.matMul(rows, b as tf.Tensor2D), [...a.shape.slice(0, -1), b.shape[1] as number]);
  }
  if (a.rank === b.rank && a.rank > 2) return tf.matMul(a, b);
  throw new OnnxModelError('unsupported', file, `${describeNode(node)} in ${file} multiplies shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}], which the converter does not support.`, { operator: node.opType, node: node.name });
}
