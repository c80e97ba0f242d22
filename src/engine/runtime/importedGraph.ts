// An imported backbone inside the explanations' gradient graphs: its nodes are copied as they are, and each
// node on the way from the image (or from the Grad-CAM layer) to the features gets its gradient from the
// rules below, through the same differentiator as the engine's own network (autodiff.ts).
//
// The differentiator wants every value's shape. An export leaves most of them dynamic (batch, and shape
// arithmetic: Shape → Gather → Concat → Reshape), so onnxruntime runs the graph once, at the batch and size
// the graph will be built for, with every value as an output: that gives the shapes, and the values of the
// integer tensors (Slice bounds, Gather indices) the gradient rules read.

import type { OnnxGraph, OnnxNode } from '../onnx/graph';
import { describeNode, OnnxModelError } from '../onnx/onnxError';
import { appendToModel, AttributeType, decodeModel, withoutWeightInputs, type AttributeMessage, type ModelMessage, type NodeMessage, type TensorMessage } from '../onnx/schema';
import type { DifferentiableGraph } from './autodiff';
import { loadOrt } from './ortModule';

/** Shape and element type of one value at the probed size; integer values up to a small size keep their data. */
export interface ProbedValue {
  dims: number[];
  type: string;
  values?: number[];
}

/** What the gradient graphs need of an imported backbone. */
export interface ImportedBackbone {
  graph: OnnxGraph;
  /** The decoded model, for its nodes' attributes and its weights as they are stored. */
  model: ModelMessage;
  /** The image input's name, and the output holding the features. */
  input: string;
  featureOutput: string;
  /** Shapes (and small integer values) of every value at one batch and image size. */
  probe: Map<string, ProbedValue>;
  /** The probe's [N, C, H, W]. */
  inputDims: number[];
}

/** The opset the combined graphs declare; imported nodes of other opsets are rewritten to it. */
export const combinedOpset = 17;

/** The opsets whose nodes we can rewrite to opset 17. */
const oldestOpset = 11;
const newestOpset = 18;

const integerTypes = new Set(['int64', 'int32', 'bool']);

/** Runs the backbone once on zeros [N, C, H, W] with every value as an output (on the CPU, a one-off). */
export async function probeBackbone(bytes: Uint8Array, graph: OnnxGraph, input: string, inputDims: number[]): Promise<Map<string, ProbedValue>> {
  checkOpset(graph);
  const known = new Set(graph.outputs.map((output) => output.name));
  const extra = graph.nodes.flatMap((node) => node.outputs).filter((name) => name && !known.has(name));
  const ort = loadOrt();
  let session: Awaited<ReturnType<typeof ort.InferenceSession.create>>;
  try {
    const model = withoutWeightInputs(bytes, new Set(graph.initializers.keys()));
    session = await ort.InferenceSession.create(appendToModel(model, { graph: { output: extra.map((name) => ({ name })) } }), { executionProviders: ['cpu'] });
  } catch (error) {
    throw new OnnxModelError('unsupported', graph.file, `onnxruntime cannot open ${graph.file} to read its shapes: ${String((error as Error)?.message ?? error).split('\n')[0]}.`, {}, String(error));
  }
  try {
    const size = inputDims.reduce((a, b) => a * b, 1);
    let results: Awaited<ReturnType<typeof session.run>>;
    try {
      results = await session.run({ [input]: new ort.Tensor('float32', new Float32Array(size), inputDims) });
    } catch (error) {
      throw new OnnxModelError('unsupported', graph.file, `onnxruntime cannot run ${graph.file} on [${inputDims.join(', ')}] to read its shapes: ${String((error as Error)?.message ?? error).split('\n')[0]}.`, {}, String(error));
    }
    const probe = new Map<string, ProbedValue>();
    for (const [name, tensor] of Object.entries(results)) {
      const dims = tensor.dims.map(Number);
      const value: ProbedValue = { dims, type: tensor.type };
      if (integerTypes.has(tensor.type) && tensor.size <= 4096) value.values = Array.from(tensor.data as ArrayLike<number | bigint | boolean>, Number);
      probe.set(name, value);
      tensor.dispose();
    }
    return probe;
  } finally {
    await session.release();
  }
}

export function checkOpset(graph: OnnxGraph): void {
  if (graph.opset < oldestOpset || graph.opset > newestOpset) {
    throw new OnnxModelError(
      'unsupported',
      graph.file,
      `The ONNX model ${graph.file} uses opset ${graph.opset}; explanations read opsets ${oldestOpset} to ${newestOpset}. Export it again with opset_version=17.`,
    );
  }
}

export function importedBackbone(bytes: Uint8Array, graph: OnnxGraph, input: string, featureOutput: string, probe: Map<string, ProbedValue>, inputDims: number[]): ImportedBackbone {
  return { graph, model: decodeModel(bytes), input, featureOutput, probe, inputDims };
}

const prefix = 'backbone/';

/**
 * Copies the backbone into `graph`, reading `image` (NCHW, normalised, the probe's shape) in place of its
 * input. Nodes after a differentiable value get gradients; `watch` (an imported value's name) becomes a
 * Grad-CAM watch point. Returns the graph's names of the imported values asked for.
 * An operator on the gradient's path that has no rule is an OnnxModelError naming it and its node.
 */
export function emitBackbone(graph: DifferentiableGraph, backbone: ImportedBackbone, image: string, wanted: string[], watch?: string): Map<string, string> {
  const { model, probe } = backbone;
  const onnx = backbone.graph;
  checkOpset(onnx);
  const names = new Map<string, string>([[backbone.input, image]]);
  const shapes = new Map<string, number[]>([[backbone.input, backbone.inputDims]]);
  const constants = new Map<string, number[]>();
  const shapeOf = (name: string): number[] => {
    const found = shapes.get(name) ?? probe.get(name)?.dims;
    if (!found) throw new Error(`no shape for ${name}`);
    return found;
  };
  for (const tensor of model.graph?.initializer ?? []) {
    const renamed = prefix + tensor.name;
    names.set(tensor.name!, renamed);
    shapes.set(tensor.name!, tensor.dims ?? []);
    graph.initializer({ ...tensor, name: renamed });
  }
  for (const [name, constant] of onnx.initializers) if (constant.kind === 'int') constants.set(name, constant.data);
  const integers = (name: string | undefined): number[] | undefined => (name ? (constants.get(name) ?? probe.get(name)?.values) : undefined);

  const messages = model.graph?.node ?? [];
  onnx.nodes.forEach((node, position) => {
    const message = messages[position];
    if ((message.attribute ?? []).some((attribute) => attribute.type === AttributeType.GRAPH || attribute.g)) {
      throw unsupported(onnx, node, 'it holds a subgraph (If, Loop, Scan)');
    }
    const inputs = node.inputs.map((input) => (input ? (names.get(input) ?? input) : ''));
    const outputs = node.outputs.map((output) => (output ? prefix + output : ''));
    node.outputs.forEach((output, i) => output && names.set(output, outputs[i]));
    const outputShapes = node.outputs.map((output) => probe.get(output)?.dims ?? []);
    const rewritten = rewriteForOpset(onnx, node, message, inputs, integers, outputShapes, graph);
    const floatOutputs = node.outputs.map((output) => probe.get(output)?.type === 'float32');
    const differentiable = inputs.some((input) => input && graph.isDifferentiable(input)) && floatOutputs.some(Boolean);
    if (!differentiable) {
      graph.node({ ...rewritten, input: rewritten.input, output: outputs, name: prefix + (node.name || outputs[0]) }, outputShapes);
    } else {
      const rule = gradientRules[node.opType];
      if (!rule) throw unsupported(onnx, node, 'Cluster Lens has no gradient for this operator yet');
      const context: RuleContext = {
        graph,
        node,
        inputs,
        outputs,
        inputShapes: node.inputs.map((input) => (input ? shapeOf(input) : [])),
        outputShapes,
        integers: (index) => integers(node.inputs[index]),
        fail: (why) => unsupported(onnx, node, why),
      };
      graph.node({ ...rewritten, input: rewritten.input, output: outputs, name: prefix + (node.name || outputs[0]) }, outputShapes);
      outputs.forEach((output, i) => {
        if (output && floatOutputs[i] && (i === 0 || rule.multipleOutputs)) graph.track(inputs.filter(Boolean), output, (dy) => rule.gradient(context, dy, i));
      });
    }
    if (watch && node.outputs.includes(watch)) graph.watch(names.get(watch)!);
  });
  const found = new Map<string, string>();
  for (const name of wanted) {
    const value = names.get(name);
    if (!value) throw new OnnxModelError('unsupported', onnx.file, `The ONNX model ${onnx.file} has no value '${name}'.`);
    found.set(name, value);
  }
  return found;
}

function unsupported(graph: OnnxGraph, node: OnnxNode, why: string): OnnxModelError {
  return new OnnxModelError(
    'unsupported',
    graph.file,
    `Explanations cannot run through the operator ${node.opType} (${describeNode(node)}) of ${graph.file}: ${why}. Features and training still work; Grad-CAM needs gradients through every operator after its layer, counterfactuals through every operator from the image on.`,
    { operator: node.opType, node: node.name },
  );
}

// ---- opsets: the combined graph declares 17, so older and newer nodes are rewritten where they differ ----

const reductionsWithAxesInput18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']);

function rewriteForOpset(graph: OnnxGraph, node: OnnxNode, message: NodeMessage, inputs: string[], integers: (name: string | undefined) => number[] | undefined, outputShapes: number[][], target: DifferentiableGraph): NodeMessage {
  const attributes = [...(message.attribute ?? [])];
  const without = (name: string) => attributes.filter((attribute) => attribute.name !== name);
  const intsAttribute = (name: string, values: number[]): AttributeMessage => ({ name, type: AttributeType.INTS, ints: values });
  const base = { ...message, input: inputs };
  if (graph.opset >= 18) {
    if (reductionsWithAxesInput18.has(node.opType) && inputs.length > 1 && inputs[1]) {
      const axes = integers(node.inputs[1]);
      if (!axes) throw unsupported(graph, node, 'its axes are computed in the graph');
      return { ...base, input: [inputs[0]], attribute: [...without('axes'), intsAttribute('axes', axes)] };
    }
    if (node.opType === 'Split' && attributes.some((attribute) => attribute.name === 'num_outputs')) {
      const axis = normalizeAxis(attributeInt(message, 'axis', 0), outputShapes[0].length);
      return { ...base, input: [inputs[0], target.ints(outputShapes.map((shape) => shape[axis]))], attribute: without('num_outputs') };
    }
    if ((node.opType === 'Pad' && inputs.length > 3 && inputs[3]) || (node.opType === 'Resize' && attributes.some((attribute) => attribute.name === 'antialias' || attribute.name === 'keep_aspect_ratio_policy'))) {
      throw unsupported(graph, node, 'it uses an opset 18 option; export with opset_version=17');
    }
  }
  if (graph.opset < 13) {
    const axesAttribute = attributes.find((attribute) => attribute.name === 'axes');
    if ((node.opType === 'Squeeze' || node.opType === 'Unsqueeze' || node.opType === 'ReduceSum') && axesAttribute) {
      return { ...base, input: [inputs[0], target.ints(axesAttribute.ints ?? [])], attribute: without('axes') };
    }
    const splitAttribute = attributes.find((attribute) => attribute.name === 'split');
    if (node.opType === 'Split' && splitAttribute) return { ...base, input: [inputs[0], target.ints(splitAttribute.ints ?? [])], attribute: without('split') };
    if ((node.opType === 'Softmax' || node.opType === 'LogSoftmax') && normalizeAxis(attributeInt(message, 'axis', 1), outputShapes[0].length) !== outputShapes[0].length - 1) {
      throw unsupported(graph, node, 'before opset 13 it flattens its input; export with opset_version=17');
    }
  }
  return base;
}

function attributeInt(message: NodeMessage, name: string, fallback: number): number {
  const found = message.attribute?.find((attribute) => attribute.name === name);
  return found?.i ?? fallback;
}

function attributeOf(node: OnnxNode, name: string): number | number[] | string | undefined {
  const value = node.attributes.get(name);
  return typeof value === 'object' && !Array.isArray(value) ? undefined : value;
}

function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

// ---- gradient rules ----

interface RuleContext {
  graph: DifferentiableGraph;
  node: OnnxNode;
  /** The node's inputs and outputs as the combined graph names them ('' where omitted). */
  inputs: string[];
  outputs: string[];
  inputShapes: number[][];
  outputShapes: number[][];
  /** Values of an integer input (a constant, or known from the probe). */
  integers(index: number): number[] | undefined;
  fail(why: string): OnnxModelError;
}

interface GradientRule {
  /** Adds dy's contributions to the inputs' gradients (output `output` for multi-output nodes). */
  gradient(context: RuleContext, dy: string, output: number): void;
  multipleOutputs?: boolean;
}

const float = (value: number) => ({ float: value });

/** Sums `gradient` (of shape `from`) down to the shape `to` it was broadcast from. */
function unbroadcast(graph: DifferentiableGraph, gradient: string, from: number[], to: number[]): string {
  if (from.length === to.length && from.every((size, i) => size === to[i])) return gradient;
  const lead = from.length - to.length;
  const axes = from.map((_, i) => i).filter((i) => i < lead || (to[i - lead] === 1 && from[i] !== 1));
  const kept = from.map((size, i) => (axes.includes(i) ? 1 : size));
  const summed = axes.length ? graph.op('ReduceSum', [gradient, graph.ints(axes)], kept, { keepdims: 1 }) : gradient;
  return graph.op('Reshape', [summed, graph.ints(to)], to);
}

/** A rule for y = f(x) elementwise: dx = g(x, y, dy). */
function elementwise(derivative: (graph: DifferentiableGraph, x: string, y: string, dy: string, shape: number[], node: OnnxNode) => string): GradientRule {
  return {
    gradient({ graph, inputs, outputs, outputShapes, node }, dy) {
      graph.gradientTo(inputs[0], derivative(graph, inputs[0], outputs[0], dy, outputShapes[0], node));
    },
  };
}

/** For ops that only move values: dx = dy reshaped to x. */
const reshapeBack: GradientRule = {
  gradient({ graph, inputs, inputShapes }, dy) {
    graph.gradientTo(inputs[0], graph.op('Reshape', [dy, graph.ints(inputShapes[0])], inputShapes[0]));
  },
};

const passThrough = elementwise((_graph, _x, _y, dy) => dy);

/** dy placed back into a tensor of `shape` along `axis` at [start, start + its size). */
function padAlong(graph: DifferentiableGraph, dy: string, dyShape: number[], shape: number[], axis: number, start: number): string {
  const begins = shape.map((_, i) => (i === axis ? start : 0));
  const ends = shape.map((size, i) => (i === axis ? size - start - dyShape[i] : 0));
  return graph.op('Pad', [dy, graph.ints([...begins, ...ends])], shape);
}

function convPads(node: OnnxNode, input: number[], output: number[], kernel: number[], strides: number[], dilations: number[]): number[] {
  const spatial = kernel.length;
  const autoPad = attributeOf(node, 'auto_pad');
  if (typeof autoPad === 'string' && autoPad !== 'NOTSET') {
    const begins: number[] = [];
    const ends: number[] = [];
    for (let i = 0; i < spatial; i++) {
      const total = autoPad === 'VALID' ? 0 : Math.max(0, (output[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input[i]);
      const small = Math.floor(total / 2);
      begins.push(autoPad === 'SAME_LOWER' ? total - small : small);
      ends.push(autoPad === 'SAME_LOWER' ? small : total - small);
    }
    return [...begins, ...ends];
  }
  const pads = attributeOf(node, 'pads');
  return Array.isArray(pads) ? pads : new Array<number>(2 * spatial).fill(0);
}

const gradientRules: Record<string, GradientRule> = {
  Identity: passThrough,
  Dropout: passThrough,
  Cast: passThrough,
  Flatten: reshapeBack,
  Reshape: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Relu: elementwise((graph, _x, y, dy, shape) => graph.op('Where', [graph.op('Greater', [y, graph.scalar(0)], shape), dy, graph.scalar(0)], shape)),
  LeakyRelu: elementwise((graph, x, _y, dy, shape, node) => {
    const alpha = Number(attributeOf(node, 'alpha') ?? 0.01);
    return graph.op('Where', [graph.op('Greater', [x, graph.scalar(0)], shape), dy, graph.op('Mul', [dy, graph.scalar(alpha)], shape)], shape);
  }),
  Sigmoid: elementwise((graph, _x, y, dy, shape) => graph.op('Mul', [dy, graph.op('Mul', [y, graph.op('Sub', [graph.scalar(1), y], shape)], shape)], shape)),
  // y = max(0, min(1, αx + β)): slope α inside (0, 1)
  HardSigmoid: elementwise((graph, x, _y, dy, shape, node) => {
    const alpha = Number(attributeOf(node, 'alpha') ?? 0.2);
    const beta = Number(attributeOf(node, 'beta') ?? 0.5);
    const t = graph.op('Add', [graph.op('Mul', [x, graph.scalar(alpha)], shape), graph.scalar(beta)], shape);
    const inside = graph.op('And', [graph.op('Greater', [t, graph.scalar(0)], shape), graph.op('Less', [t, graph.scalar(1)], shape)], shape);
    return graph.op('Where', [inside, graph.op('Mul', [dy, graph.scalar(alpha)], shape), graph.scalar(0)], shape);
  }),
  // y = x·min(max(x + 3, 0), 6)/6: 0 below −3, 1 above 3, (2x + 3)/6 between (as PyTorch's hardswish_backward)
  HardSwish: elementwise((graph, x, _y, dy, shape) => {
    const middle = graph.op('Mul', [dy, graph.op('Add', [graph.op('Mul', [x, graph.scalar(1 / 3)], shape), graph.scalar(0.5)], shape)], shape);
    const upper = graph.op('Where', [graph.op('Greater', [x, graph.scalar(3)], shape), dy, middle], shape);
    return graph.op('Where', [graph.op('Less', [x, graph.scalar(-3)], shape), graph.scalar(0), upper], shape);
  }),
  Tanh: elementwise((graph, _x, y, dy, shape) => graph.op('Mul', [dy, graph.op('Sub', [graph.scalar(1), graph.op('Mul', [y, y], shape)], shape)], shape)),
  // erf'(x) = 2/√π · exp(−x²)
  Erf: elementwise((graph, x, _y, dy, shape) => graph.op('Mul', [dy, graph.op('Mul', [graph.op('Exp', [graph.op('Neg', [graph.op('Mul', [x, x], shape)], shape)], shape), graph.scalar(2 / Math.sqrt(Math.PI))], shape)], shape)),
  Exp: elementwise((graph, _x, y, dy, shape) => graph.op('Mul', [dy, y], shape)),
  Log: elementwise((graph, x, _y, dy, shape) => graph.op('Div', [dy, x], shape)),
  Neg: elementwise((graph, _x, _y, dy, shape) => graph.op('Neg', [dy], shape)),
  Sqrt: elementwise((graph, _x, y, dy, shape) => graph.op('Div', [graph.op('Mul', [dy, graph.scalar(0.5)], shape), y], shape)),
  Reciprocal: elementwise((graph, _x, y, dy, shape) => graph.op('Neg', [graph.op('Mul', [dy, graph.op('Mul', [y, y], shape)], shape)], shape)),
  Clip: {
    gradient({ graph, inputs, outputShapes }, dy) {
      const shape = outputShapes[0];
      const [x, low, high] = inputs;
      let inside: string | undefined;
      const both = (condition: string) => (inside = inside ? graph.op('And', [inside, condition], shape) : condition);
      if (low) both(graph.op('Not', [graph.op('Less', [x, low], shape)], shape));
      if (high) both(graph.op('Not', [graph.op('Greater', [x, high], shape)], shape));
      graph.gradientTo(x, inside ? graph.op('Where', [inside, dy, graph.scalar(0)], shape) : dy);
    },
  },
  Pow: {
    gradient(context, dy) {
      const { graph, inputs, inputShapes, outputShapes } = context;
      const [x, exponent] = inputs;
      if (graph.isDifferentiable(exponent)) throw context.fail('its exponent depends on the image');
      const shape = outputShapes[0];
      const lowered = graph.op('Sub', [exponent, graph.scalar(1)], inputShapes[1]);
      const slope = graph.op('Mul', [exponent, graph.op('Pow', [x, lowered], shape)], shape);
      graph.gradientTo(x, unbroadcast(graph, graph.op('Mul', [dy, slope], shape), shape, inputShapes[0]));
    },
  },
  Add: {
    gradient({ graph, inputs, inputShapes, outputShapes }, dy) {
      inputs.forEach((input, i) => graph.isDifferentiable(input) && graph.gradientTo(input, unbroadcast(graph, dy, outputShapes[0], inputShapes[i])));
    },
  },
  Sum: {
    gradient({ graph, inputs, inputShapes, outputShapes }, dy) {
      inputs.forEach((input, i) => graph.isDifferentiable(input) && graph.gradientTo(input, unbroadcast(graph, dy, outputShapes[0], inputShapes[i])));
    },
  },
  Sub: {
    gradient({ graph, inputs, inputShapes, outputShapes }, dy) {
      const shape = outputShapes[0];
      if (graph.isDifferentiable(inputs[0])) graph.gradientTo(inputs[0], unbroadcast(graph, dy, shape, inputShapes[0]));
      if (graph.isDifferentiable(inputs[1])) graph.gradientTo(inputs[1], unbroadcast(graph, graph.op('Neg', [dy], shape), shape, inputShapes[1]));
    },
  },
  Mul: {
    gradient({ graph, inputs, inputShapes, outputShapes }, dy) {
      const shape = outputShapes[0];
      const [a, b] = inputs;
      if (graph.isDifferentiable(a)) graph.gradientTo(a, unbroadcast(graph, graph.op('Mul', [dy, b], shape), shape, inputShapes[0]));
      if (graph.isDifferentiable(b)) graph.gradientTo(b, unbroadcast(graph, graph.op('Mul', [dy, a], shape), shape, inputShapes[1]));
    },
  },
  // y = a/b: da = dy/b, db = −dy·y/b
  Div: {
    gradient({ graph, inputs, outputs, inputShapes, outputShapes }, dy) {
      const shape = outputShapes[0];
      const [a, b] = inputs;
      const overB = graph.op('Div', [dy, b], shape);
      if (graph.isDifferentiable(a)) graph.gradientTo(a, unbroadcast(graph, overB, shape, inputShapes[0]));
      if (graph.isDifferentiable(b)) graph.gradientTo(b, unbroadcast(graph, graph.op('Neg', [graph.op('Mul', [overB, outputs[0]], shape)], shape), shape, inputShapes[1]));
    },
  },
  Where: {
    gradient({ graph, inputs, inputShapes, outputShapes }, dy) {
      const shape = outputShapes[0];
      const [condition, whenTrue, whenFalse] = inputs;
      if (graph.isDifferentiable(whenTrue)) graph.gradientTo(whenTrue, unbroadcast(graph, graph.op('Where', [condition, dy, graph.scalar(0)], shape), shape, inputShapes[1]));
      if (graph.isDifferentiable(whenFalse)) graph.gradientTo(whenFalse, unbroadcast(graph, graph.op('Where', [condition, graph.scalar(0), dy], shape), shape, inputShapes[2]));
    },
  },
  Expand: {
    gradient({ graph, inputs, inputShapes, outputShapes }, dy) {
      graph.gradientTo(inputs[0], unbroadcast(graph, dy, outputShapes[0], inputShapes[0]));
    },
  },
  // [..., m, k]·[..., k, n]: dA = dy·Bᵀ, dB = Aᵀ·dy, each summed over the batch axes it was broadcast along
  MatMul: {
    gradient(context, dy) {
      const { graph, inputs, inputShapes, outputShapes } = context;
      const [a, b] = inputs;
      const [aShape, bShape] = inputShapes;
      if (aShape.length < 2 || bShape.length < 2) throw context.fail('a 1-D operand has no gradient rule');
      const swapLast = (value: string, shape: number[]) => {
        const perm = shape.map((_, i) => i);
        [perm[shape.length - 2], perm[shape.length - 1]] = [perm[shape.length - 1], perm[shape.length - 2]];
        return graph.op('Transpose', [value], perm.map((axis) => shape[axis]), { perm });
      };
      const out = outputShapes[0];
      const batch = out.slice(0, -2);
      if (graph.isDifferentiable(a)) {
        const full = [...batch, aShape[aShape.length - 2], aShape[aShape.length - 1]];
        graph.gradientTo(a, unbroadcast(graph, graph.op('MatMul', [dy, swapLast(b, bShape)], full), full, aShape));
      }
      if (graph.isDifferentiable(b)) {
        const full = [...batch, bShape[bShape.length - 2], bShape[bShape.length - 1]];
        graph.gradientTo(b, unbroadcast(graph, graph.op('MatMul', [swapLast(a, aShape), dy], full), full, bShape));
      }
    },
  },
  // Y = α·A'·B' + β·C with A' = Aᵀ when transA, B' = Bᵀ when transB
  Gemm: {
    gradient({ graph, node, inputs, inputShapes, outputShapes }, dy) {
      const [a, b, c] = inputs;
      const alpha = Number(attributeOf(node, 'alpha') ?? 1);
      const beta = Number(attributeOf(node, 'beta') ?? 1);
      const transA = Number(attributeOf(node, 'transA') ?? 0);
      const transB = Number(attributeOf(node, 'transB') ?? 0);
      if (graph.isDifferentiable(a)) {
        // dA' = α·dy·B'ᵀ; dA = dA'ᵀ = α·B'·dyᵀ when transA
        const gradient = transA ? graph.op('Gemm', [b, dy], inputShapes[0], { transA: transB, transB: 1, alpha: float(alpha) }) : graph.op('Gemm', [dy, b], inputShapes[0], { transB: transB ? 0 : 1, alpha: float(alpha) });
        graph.gradientTo(a, gradient);
      }
      if (graph.isDifferentiable(b)) {
        // dB' = α·A'ᵀ·dy; dB = α·dyᵀ·A' when transB
        const gradient = transB ? graph.op('Gemm', [dy, a], inputShapes[1], { transA: 1, transB: transA, alpha: float(alpha) }) : graph.op('Gemm', [a, dy], inputShapes[1], { transA: transA ? 0 : 1, alpha: float(alpha) });
        graph.gradientTo(b, gradient);
      }
      if (c && graph.isDifferentiable(c)) graph.gradientTo(c, unbroadcast(graph, graph.op('Mul', [dy, graph.scalar(beta)], outputShapes[0]), outputShapes[0], inputShapes[2]));
    },
  },
  // dx = ConvTranspose(dy, W) with the convolution's geometry; output_padding restores sizes a stride cut
  Conv: {
    gradient(context, dy) {
      const { graph, node, inputs, inputShapes, outputShapes } = context;
      const [x, weight] = inputs;
      if (graph.isDifferentiable(weight) || (inputs[2] && graph.isDifferentiable(inputs[2]))) throw context.fail('its weights depend on the image');
      const xShape = inputShapes[0];
      const yShape = outputShapes[0];
      const kernel = inputShapes[1].slice(2);
      const spatial = kernel.length;
      const ones = new Array<number>(spatial).fill(1);
      const strides = (attributeOf(node, 'strides') as number[] | undefined) ?? ones;
      const dilations = (attributeOf(node, 'dilations') as number[] | undefined) ?? ones;
      const pads = convPads(node, xShape.slice(2), yShape.slice(2), kernel, strides, dilations);
      const outputPadding = kernel.map((size, i) => xShape[2 + i] - ((yShape[2 + i] - 1) * strides[i] + (size - 1) * dilations[i] + 1 - pads[i] - pads[spatial + i]));
      const group = Number(attributeOf(node, 'group') ?? 1);
      graph.gradientTo(x, graph.op('ConvTranspose', [dy, weight], xShape, { kernel_shape: kernel, strides, dilations, pads, group, output_padding: outputPadding }));
    },
  },
  BatchNormalization: {
    gradient(context, dy) {
      const { graph, node, inputs, inputShapes } = context;
      const [x, scale, , , variance] = inputs;
      if ([1, 2, 3, 4].some((i) => graph.isDifferentiable(inputs[i]))) throw context.fail('its parameters depend on the image');
      const shape = inputShapes[0];
      const channels = shape[1];
      const perChannel = [channels, ...new Array<number>(shape.length - 2).fill(1)];
      const epsilon = Number(attributeOf(node, 'epsilon') ?? 1e-5);
      const factor = graph.op('Div', [scale, graph.op('Sqrt', [graph.op('Add', [variance, graph.scalar(epsilon)], [channels])], [channels])], [channels]);
      graph.gradientTo(x, graph.op('Mul', [dy, graph.op('Reshape', [factor, graph.ints(perChannel)], perChannel)], shape));
    },
  },
  // dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ, over the normalised axes
  LayerNormalization: {
    gradient(context, dy) {
      const { graph, node, inputs, inputShapes } = context;
      const [x, scale] = inputs;
      if (graph.isDifferentiable(scale) || (inputs[2] && graph.isDifferentiable(inputs[2]))) throw context.fail('its scale depends on the image');
      const shape = inputShapes[0];
      const first = normalizeAxis(Number(attributeOf(node, 'axis') ?? -1), shape.length);
      const axes = shape.map((_, i) => i).filter((i) => i >= first);
      const reduced = shape.map((size, i) => (i >= first ? 1 : size));
      const mean = (value: string) => graph.op('ReduceMean', [value], reduced, { axes, keepdims: 1 });
      const epsilon = Number(attributeOf(node, 'epsilon') ?? 1e-5);
      const centred = graph.op('Sub', [x, mean(x)], shape);
      const inverse = graph.op('Reciprocal', [graph.op('Sqrt', [graph.op('Add', [mean(graph.op('Mul', [centred, centred], shape)), graph.scalar(epsilon)], reduced)], reduced)], reduced);
      const normalised = graph.op('Mul', [centred, inverse], shape);
      const g = graph.op('Mul', [dy, scale], shape);
      const inner = graph.op('Sub', [graph.op('Sub', [g, mean(g)], shape), graph.op('Mul', [normalised, mean(graph.op('Mul', [g, normalised], shape))], shape)], shape);
      graph.gradientTo(x, graph.op('Mul', [inner, inverse], shape));
    },
  },
  // dx = y·(dy − Σ dy·y) along the axis
  Softmax: {
    gradient({ graph, node, inputs, outputs, outputShapes }, dy) {
      const shape = outputShapes[0];
      const axis = normalizeAxis(Number(attributeOf(node, 'axis') ?? -1), shape.length);
      const y = outputs[0];
      const along = graph.op('ReduceSum', [graph.op('Mul', [dy, y], shape), graph.ints([axis])], shape.map((size, i) => (i === axis ? 1 : size)), { keepdims: 1 });
      graph.gradientTo(inputs[0], graph.op('Mul', [y, graph.op('Sub', [dy, along], shape)], shape));
    },
  },
  GlobalAveragePool: {
    gradient({ graph, inputs, inputShapes }, dy) {
      const shape = inputShapes[0];
      const positions = shape.slice(2).reduce((a, b) => a * b, 1);
      graph.gradientTo(inputs[0], graph.op('Mul', [graph.op('Expand', [dy, graph.ints(shape)], shape), graph.scalar(1 / positions)], shape));
    },
  },
  ReduceMean: reductionRule(true),
  ReduceSum: reductionRule(false),
  Transpose: {
    gradient({ graph, node, inputs, inputShapes }, dy) {
      const shape = inputShapes[0];
      const perm = (attributeOf(node, 'perm') as number[] | undefined) ?? shape.map((_, i) => shape.length - 1 - i);
      const inverse = perm.map((_, i) => perm.indexOf(i));
      graph.gradientTo(inputs[0], graph.op('Transpose', [dy], shape, { perm: inverse }));
    },
  },
  Concat: {
    gradient({ graph, node, inputs, inputShapes, outputShapes }, dy) {
      const axis = normalizeAxis(Number(attributeOf(node, 'axis')), outputShapes[0].length);
      let offset = 0;
      inputs.forEach((input, i) => {
        const size = inputShapes[i][axis];
        if (graph.isDifferentiable(input)) graph.gradientTo(input, graph.op('Slice', [dy, graph.ints([offset]), graph.ints([offset + size]), graph.ints([axis])], inputShapes[i]));
        offset += size;
      });
    },
  },
  Split: {
    multipleOutputs: true,
    gradient({ graph, node, inputs, inputShapes, outputShapes }, dy, output) {
      const shape = inputShapes[0];
      const axis = normalizeAxis(Number(attributeOf(node, 'axis') ?? 0), shape.length);
      const start = outputShapes.slice(0, output).reduce((sum, part) => sum + part[axis], 0);
      graph.gradientTo(inputs[0], padAlong(graph, dy, outputShapes[output], shape, axis, start));
    },
  },
  // Step-1 slices: dy padded back with zeros
  Slice: {
    gradient(context, dy) {
      const { graph, inputs, inputShapes, outputShapes } = context;
      const shape = inputShapes[0];
      const starts = context.integers(1);
      const axes = inputs[3] ? context.integers(3) : shape.map((_, i) => i);
      const steps = inputs[4] ? context.integers(4) : undefined;
      if (!starts || !axes || (inputs[4] && !steps)) throw context.fail('its bounds are not known');
      if (steps?.some((step) => step !== 1)) throw context.fail('slices with a step other than 1 have no gradient rule');
      const begins = shape.map(() => 0);
      axes.forEach((axis, i) => {
        const a = normalizeAxis(axis, shape.length);
        const start = starts[i] < 0 ? starts[i] + shape[a] : starts[i];
        begins[a] = Math.min(Math.max(start, 0), shape[a]);
      });
      const ends = shape.map((size, i) => size - begins[i] - outputShapes[0][i]);
      graph.gradientTo(inputs[0], graph.op('Pad', [dy, graph.ints([...begins, ...ends])], shape));
    },
  },
  // Indices known (constants, or shape arithmetic): each picked slice goes back to its place
  Gather: {
    gradient(context, dy) {
      const { graph, node, inputs, inputShapes, outputShapes } = context;
      const shape = inputShapes[0];
      const axis = normalizeAxis(Number(attributeOf(node, 'axis') ?? 0), shape.length);
      const indices = context.integers(1);
      const indexShape = inputShapes[1];
      if (!indices) throw context.fail('its indices are not known');
      if (indexShape.length > 1 || indices.length > 64) throw context.fail('only scalar or short 1-D indices have a gradient rule');
      const place = (part: string, partShape: number[], index: number) => padAlong(graph, part, partShape, shape, axis, index < 0 ? index + shape[axis] : index);
      const partShape = shape.map((size, i) => (i === axis ? 1 : size));
      if (indexShape.length === 0) {
        graph.gradientTo(inputs[0], place(graph.op('Unsqueeze', [dy, graph.ints([axis])], partShape), partShape, indices[0]));
        return;
      }
      indices.forEach((index, j) => {
        const part = graph.op('Slice', [dy, graph.ints([j]), graph.ints([j + 1]), graph.ints([axis])], outputShapes[0].map((size, i) => (i === axis ? 1 : size)));
        graph.gradientTo(inputs[0], place(part, partShape, index));
      });
    },
  },
  // dy goes to the positions that hold their window's maximum, shared among ties; written with slices, Equal and
  // pads only (WebGPU's MaxPool has no Indices output): for each kernel tap, the strided view of x that the tap
  // reads is compared with y, and the matches are spread back to their places (zeros between, for the stride).
  MaxPool: {
    gradient(context, dy) {
      const { graph, node, inputs, outputs, inputShapes, outputShapes } = context;
      const [n, c, h, w] = inputShapes[0];
      const [, , outH, outW] = outputShapes[0];
      if (inputShapes[0].length !== 4) throw context.fail('only 2-D max pooling has a gradient rule');
      const [kh, kw] = attributeOf(node, 'kernel_shape') as number[];
      const [sh, sw] = (attributeOf(node, 'strides') as number[] | undefined) ?? [1, 1];
      const [dh, dw] = (attributeOf(node, 'dilations') as number[] | undefined) ?? [1, 1];
      const [top, left] = convPads(node, [h, w], [outH, outW], [kh, kw], [sh, sw], [dh, dw]);
      // Big enough for every tap's view (ceil_mode may read past the stated end padding).
      const paddedH = Math.max(h + top, (outH - 1) * sh + (kh - 1) * dh + 1);
      const paddedW = Math.max(w + left, (outW - 1) * sw + (kw - 1) * dw + 1);
      const padded = [n, c, paddedH, paddedW];
      const x = graph.op('Pad', [inputs[0], graph.ints([0, 0, top, left, 0, 0, paddedH - h - top, paddedW - w - left]), graph.scalar(-3.4e38)], padded);
      const out = outputShapes[0];
      const taps: { i: number; j: number; match: string }[] = [];
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const view = graph.op('Slice', [x, graph.ints([i * dh, j * dw]), graph.ints([i * dh + (outH - 1) * sh + 1, j * dw + (outW - 1) * sw + 1]), graph.ints([2, 3]), graph.ints([sh, sw])], out);
          taps.push({ i, j, match: graph.op('Cast', [graph.op('Equal', [view, outputs[0]], out)], out, { to: 1 }) });
        }
      }
      const ties = taps.map((tap) => tap.match).reduce((sum, match) => graph.op('Add', [sum, match], out));
      const share = graph.op('Div', [dy, graph.op('Max', [ties, graph.scalar(1)], out)], out);
      let total: string | undefined;
      for (const { i, j, match } of taps) {
        const part = graph.op('Mul', [share, match], out);
        // [n, c, outH, outW] → every stride-th place of [n, c, outH·sh, outW·sw]
        const spaced = [n, c, outH, sh, outW, sw];
        const spread = graph.op('Reshape', [graph.op('Pad', [graph.op('Reshape', [part, graph.ints([n, c, outH, 1, outW, 1])], [n, c, outH, 1, outW, 1]), graph.ints([0, 0, 0, 0, 0, 0, 0, 0, 0, sh - 1, 0, sw - 1])], spaced), graph.ints([n, c, outH * sh, outW * sw])], [n, c, outH * sh, outW * sw]);
        const rows = Math.min(outH * sh, paddedH - i * dh);
        const columns = Math.min(outW * sw, paddedW - j * dw);
        const fitted = rows < outH * sh || columns < outW * sw ? graph.op('Slice', [spread, graph.ints([0, 0]), graph.ints([rows, columns]), graph.ints([2, 3])], [n, c, rows, columns]) : spread;
        const placed = graph.op('Pad', [fitted, graph.ints([0, 0, i * dh, j * dw, 0, 0, paddedH - i * dh - rows, paddedW - j * dw - columns])], padded);
        total = total ? graph.op('Add', [total, placed], padded) : placed;
      }
      graph.gradientTo(inputs[0], graph.op('Slice', [total!, graph.ints([top, left]), graph.ints([top + h, left + w]), graph.ints([2, 3])], [n, c, h, w]));
    },
  },
};

function reductionRule(mean: boolean): GradientRule {
  return {
    gradient(context, dy) {
      const { graph, node, inputs, inputShapes } = context;
      const shape = inputShapes[0];
      // An attribute (ReduceMean to opset 17, ReduceSum before 13) or an input (after those)
      const listed = (attributeOf(node, 'axes') as number[] | undefined) ?? (inputs[1] ? context.integers(1) : []);
      if (!listed) throw context.fail('its axes are not known');
      const axes = listed.length ? listed.map((axis) => normalizeAxis(axis, shape.length)) : shape.map((_, i) => i);
      const kept = shape.map((size, i) => (axes.includes(i) ? 1 : size));
      const spread = graph.op('Expand', [graph.op('Reshape', [dy, graph.ints(kept)], kept), graph.ints(shape)], shape);
      const count = axes.reduce((product, axis) => product * shape[axis], 1);
      graph.gradientTo(inputs[0], mean ? graph.op('Mul', [spread, graph.scalar(1 / count)], shape) : spread);
    },
  };
}

/** The operators that have a gradient rule, for messages and tests. */
export const differentiableOperators = Object.keys(gradientRules).sort();

export type { TensorMessage };
