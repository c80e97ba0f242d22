// A small reverse-mode differentiator that writes ONNX: each differentiable op emits its forward nodes
// and records how to emit its gradient, so one onnxruntime session runs a whole training step (forward
// and backward) on MLAS's native kernels. It covers the ops of the engine's own network; importedGraph.ts
// adds the gradients of the operators imported backbones use, through node(), track() and gradientTo().

import { samePadding } from '../onnx/export';
import { AttributeType, DataType, type AttributeMessage, type NodeMessage, type TensorMessage, type ValueInfoMessage } from '../onnx/schema';

/** Attribute values: whole numbers are INT attributes; wrap a FLOAT one as { float } so that 1.0 stays a float. */
export type Attributes = Record<string, number | number[] | string | { float: number }>;

/**
 * Up to this many output positions per image, a convolution runs as one GEMM over the whole batch's patches
 * (im2col): MLAS's Conv multiplies image by image, and a 2×2 or 4×4 map gives it matrices too thin to be fast.
 */
const batchGemmMaximumPositions = 16;

export class DifferentiableGraph {
  readonly nodes: NodeMessage[] = [];
  readonly initializers: TensorMessage[] = [];
  readonly inputs: ValueInfoMessage[] = [];
  readonly outputs: ValueInfoMessage[] = [];
  private readonly shapes = new Map<string, number[]>();
  private readonly differentiable = new Set<string>();
  private readonly gradients = new Map<string, string>();
  /** Gradient emitters in forward order; backward() runs them in reverse. */
  private readonly tape: { output: string; emit: (dy: string) => void }[] = [];
  private readonly constants = new Map<string, string>();
  private counter = 0;
  /** Prefix of the next nodes' names, so a profile can tell forward, input-gradient and filter-gradient work apart. */
  private tag = '';

  shape(value: string): number[] {
    const found = this.shapes.get(value);
    if (!found) throw new Error(`no shape for ${value}`);
    return found;
  }

  /** A graph input; `trainable` inputs get gradients. */
  input(name: string, shape: number[], trainable: boolean): string {
    this.inputs.push(valueInfo(name, shape));
    this.shapes.set(name, shape);
    if (trainable) this.differentiable.add(name);
    return name;
  }

  /** Makes an intermediate value a point that gradients flow to (and no further back): Grad-CAM's layer. */
  watch(value: string): string {
    this.differentiable.add(value);
    return value;
  }

  /** Makes `value` a graph output under `name`. */
  output(value: string, name: string): void {
    this.nodes.push({ opType: 'Identity', input: [value], output: [name], name });
    this.outputs.push(valueInfo(name, this.shape(value)));
  }

  /** A plain node without a gradient. */
  op(opType: string, inputs: string[], shape: number[], attributes: Attributes = {}): string {
    const output = `${this.tag}${opType.toLowerCase()}_${this.counter++}`;
    this.nodes.push({ opType, input: inputs, output: [output], name: output, attribute: encodeAttributes(attributes) });
    this.shapes.set(output, shape);
    return output;
  }

  floats(values: number[] | Float32Array, shape: number[]): string {
    return this.constant(DataType.FLOAT, Array.from(values), shape);
  }

  ints(values: number[]): string {
    return this.constant(DataType.INT64, values, [values.length]);
  }

  scalar(value: number): string {
    return this.constant(DataType.FLOAT, [value], []);
  }

  private constant(dataType: number, values: number[], shape: number[]): string {
    const key = `${dataType}:${shape.join(',')}:${values.join(',')}`;
    const known = this.constants.get(key);
    if (known) return known;
    const name = `const_${this.counter++}`;
    const tensor: TensorMessage = { name, dims: shape, dataType };
    if (dataType === DataType.INT64) tensor.int64Data = values;
    else tensor.rawData = new Uint8Array(Float32Array.from(values).buffer);
    this.initializers.push(tensor);
    this.shapes.set(name, shape);
    this.constants.set(key, name);
    return name;
  }

  /** Runs `emit` with `tag` added to the names of the nodes it makes. */
  tagged<T>(tag: string, emit: () => T): T {
    const previous = this.tag;
    this.tag = previous + tag;
    try {
      return emit();
    } finally {
      this.tag = previous;
    }
  }

  private needsGradient(value: string): boolean {
    return this.differentiable.has(value);
  }

  // ---- for graphs written elsewhere (an imported backbone, runtime/importedGraph.ts) ----

  /** Whether gradients flow to `value`. */
  isDifferentiable(value: string): boolean {
    return this.needsGradient(value);
  }

  /** A node as given (its outputs' shapes known from elsewhere); no gradient unless track() adds one. */
  node(node: NodeMessage, outputShapes: number[][]): void {
    this.nodes.push(node);
    (node.output ?? []).forEach((output, i) => outputShapes[i] && this.shapes.set(output, outputShapes[i]));
  }

  /** Sets the shape of a value whose node was added with node() before its shape was known. */
  declareShape(value: string, shape: number[]): void {
    this.shapes.set(value, shape);
  }

  /** A weight or constant as given. */
  initializer(tensor: TensorMessage): string {
    this.initializers.push(tensor);
    this.shapes.set(tensor.name!, tensor.dims ?? []);
    return tensor.name!;
  }

  /** Records how `output`'s gradient reaches `inputs` (through gradientTo), when any of them is differentiable. */
  track(inputs: string[], output: string, emit: (dy: string) => void): string {
    return this.record(inputs, output, emit);
  }

  /** Adds a gradient contribution to `value` (ignored when `value` takes no gradient). */
  gradientTo(value: string, gradient: string): void {
    this.accumulate(value, gradient);
  }

  /** Records an op whose output is differentiable when any of its inputs is. */
  private record(inputs: string[], output: string, emit: (dy: string) => void): string {
    if (inputs.some((input) => this.needsGradient(input))) {
      this.differentiable.add(output);
      // The gradient's nodes carry the tag of the forward op (the pass it belongs to, say).
      const tag = this.tag;
      this.tape.push({ output, emit: (dy) => this.tagged(tag, () => emit(dy)) });
    }
    return output;
  }

  private accumulate(value: string, gradient: string): void {
    if (!this.needsGradient(value)) return;
    const previous = this.gradients.get(value);
    this.gradients.set(value, previous ? this.op('Add', [previous, gradient], this.shape(value)) : gradient);
  }

  /** Emits the backward pass from `seeds` (value → its gradient); read results with gradient(). */
  backward(seeds: [string, string][]): void {
    for (const [value, gradient] of seeds) this.accumulate(value, gradient);
    for (let i = this.tape.length - 1; i >= 0; i--) {
      const { output, emit } = this.tape[i];
      const dy = this.gradients.get(output);
      if (dy) emit(dy);
    }
  }

  gradient(value: string): string {
    const found = this.gradients.get(value);
    if (!found) throw new Error(`${value} received no gradient`);
    return found;
  }

  // ---- differentiable ops ----

  /** TensorFlow-'same' convolution of NCHW `x` with an [kh, kw, in, out] filter (the engine's layout). */
  conv2d(x: string, filter: string, stride: number): string {
    const [n, , h, w] = this.shape(x);
    const [kh, kw, inChannels, outChannels] = this.shape(filter);
    const padH = samePadding(h, kh, stride);
    const padW = samePadding(w, kw, stride);
    const pads = [padH.begin, padW.begin, padH.end, padW.end];
    if (padH.output * padW.output <= batchGemmMaximumPositions && kh * kw > 1) return this.tagged(`${filter}/`, () => this.patchConv2d(x, filter, stride, pads, [padH.output, padW.output]));
    const oihw = this.op('Transpose', [filter], [outChannels, inChannels, kh, kw], { perm: [3, 2, 0, 1] });
    const y = this.tagged(`${filter}/`, () => this.op('Conv', [x, oihw], [n, outChannels, padH.output, padW.output], { kernel_shape: [kh, kw], strides: [stride, stride], pads }));
    return this.record([x, filter], y, (dy) => {
      if (this.needsGradient(x)) this.accumulate(x, this.tagged(`input_gradient/${filter}/`, () => this.convInputGradient(dy, filter, oihw, this.shape(x), stride, pads)));
      if (this.needsGradient(filter)) this.accumulate(filter, this.tagged(`filter_gradient/${filter}/`, () => this.convFilterGradient(x, dy, [kh, kw], stride, pads)));
    });
  }

  private convInputGradient(dy: string, filter: string, oihw: string, xShape: number[], stride: number, pads: number[]): string {
    const [kh, kw, inChannels, outChannels] = this.shape(filter);
    if (stride === 1) {
      // A stride-1 input gradient is a convolution with the filter flipped and its channels swapped
      // (MLAS's Conv measured 1.6× faster than its ConvTranspose here); the pads swap ends.
      const swapped = this.op('Transpose', [filter], [inChannels, outChannels, kh, kw], { perm: [2, 3, 0, 1] });
      const flipped = this.op('Slice', [swapped, this.ints([kh - 1, kw - 1]), this.ints([-kh - 1, -kw - 1]), this.ints([2, 3]), this.ints([-1, -1])], [inChannels, outChannels, kh, kw]);
      return this.op('Conv', [dy, flipped], xShape, { kernel_shape: [kh, kw], pads: [pads[2], pads[3], pads[0], pads[1]] });
    }
    const [, , outH, outW] = this.shape(dy);
    const extraH = xShape[2] - (stride * (outH - 1) + kh - pads[0] - pads[2]);
    const extraW = xShape[3] - (stride * (outW - 1) + kw - pads[1] - pads[3]);
    return this.op('ConvTranspose', [dy, oihw], xShape, { kernel_shape: [kh, kw], strides: [stride, stride], pads, output_padding: [extraH, extraW] });
  }

  /** dW[kh, kw, in, out] = Σ over batch and positions of dy · the input patch. */
  private convFilterGradient(x: string, dy: string, [kh, kw]: number[], stride: number, pads: number[]): string {
    const [n, inChannels, h, w] = this.shape(x);
    const [, outChannels, outH, outW] = this.shape(dy);
    // One batched GEMM per filter tap: dy [n, out, hw] · x_tap [n, hw, in], summed over the batch.
    const nhwc = this.op('Transpose', [x], [n, h, w, inChannels], { perm: [0, 2, 3, 1] });
    const padded = this.op('Pad', [nhwc, this.ints([0, pads[0], pads[1], 0, 0, pads[2], pads[3], 0])], [n, h + pads[0] + pads[2], w + pads[1] + pads[3], inChannels]);
    const dyRows = this.op('Reshape', [dy, this.ints([n, outChannels, outH * outW])], [n, outChannels, outH * outW]);
    const taps: string[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const ends = [i + stride * (outH - 1) + 1, j + stride * (outW - 1) + 1];
        const tap = this.op('Slice', [padded, this.ints([i, j]), this.ints(ends), this.ints([1, 2]), this.ints([stride, stride])], [n, outH, outW, inChannels]);
        const rows = this.op('Reshape', [tap, this.ints([n, outH * outW, inChannels])], [n, outH * outW, inChannels]);
        const product = this.op('MatMul', [dyRows, rows], [n, outChannels, inChannels]);
        taps.push(this.op('ReduceSum', [product, this.ints([0])], [outChannels, inChannels], { keepdims: 0 }));
      }
    }
    const stacked = taps.length === 1 ? taps[0] : this.op('Concat', taps, [kh * kw * outChannels, inChannels], { axis: 0 });
    const grid = this.op('Reshape', [stacked, this.ints([kh, kw, outChannels, inChannels])], [kh, kw, outChannels, inChannels]);
    return this.op('Transpose', [grid], [kh, kw, inChannels, outChannels], { perm: [0, 1, 3, 2] });
  }

  /**
   * A convolution as one GEMM over the batch's patches: x → NHWC, padded, the kh·kw shifted (strided) views
   * side by side as [n·positions, kh·kw·in] rows, times the filter as [kh·kw·in, out]. Its gradients are
   * GEMMs too; the input gradient adds the patch gradients back at their shifts (col2im) for stride 1,
   * and is a ConvTranspose for stride 2.
   */
  private patchConv2d(x: string, filter: string, stride: number, pads: number[], [outH, outW]: number[]): string {
    const [n, inChannels, h, w] = this.shape(x);
    const [kh, kw, , outChannels] = this.shape(filter);
    const rows = n * outH * outW;
    const patchSize = kh * kw * inChannels;
    const padded = [n, h + pads[0] + pads[2], w + pads[1] + pads[3], inChannels];
    const nhwc = this.op('Transpose', [x], [n, h, w, inChannels], { perm: [0, 2, 3, 1] });
    const paddedX = this.op('Pad', [nhwc, this.ints([0, pads[0], pads[1], 0, 0, pads[2], pads[3], 0])], padded);
    const taps: string[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const ends = [i + stride * (outH - 1) + 1, j + stride * (outW - 1) + 1];
        taps.push(this.op('Slice', [paddedX, this.ints([i, j]), this.ints(ends), this.ints([1, 2]), this.ints([stride, stride])], [n, outH, outW, inChannels]));
      }
    }
    const patches = this.op('Reshape', [this.op('Concat', taps, [n, outH, outW, patchSize], { axis: 3 }), this.ints([rows, patchSize])], [rows, patchSize]);
    const weights = this.op('Reshape', [filter, this.ints([patchSize, outChannels])], [patchSize, outChannels]);
    const product = this.op('MatMul', [patches, weights], [rows, outChannels]);
    const y = this.op('Transpose', [this.op('Reshape', [product, this.ints([n, outH, outW, outChannels])], [n, outH, outW, outChannels])], [n, outChannels, outH, outW], { perm: [0, 3, 1, 2] });
    return this.record([x, filter], y, (dy) => {
      const dyRows = this.op('Reshape', [this.op('Transpose', [dy], [n, outH, outW, outChannels], { perm: [0, 2, 3, 1] }), this.ints([rows, outChannels])], [rows, outChannels]);
      if (this.needsGradient(filter)) {
        const gradient = this.tagged(`filter_gradient/${filter}/`, () => this.op('Gemm', [patches, dyRows], [patchSize, outChannels], { transA: 1 }));
        this.accumulate(filter, this.op('Reshape', [gradient, this.ints([kh, kw, inChannels, outChannels])], [kh, kw, inChannels, outChannels]));
      }
      if (!this.needsGradient(x)) return;
      this.tagged(`input_gradient/${filter}/`, () => {
        if (stride !== 1) {
          const oihw = this.op('Transpose', [filter], [outChannels, inChannels, kh, kw], { perm: [3, 2, 0, 1] });
          this.accumulate(x, this.convInputGradient(dy, filter, oihw, [n, inChannels, h, w], stride, pads));
          return;
        }
        const patchGradient = this.op('Reshape', [this.op('Gemm', [dyRows, weights], [rows, patchSize], { transB: 1 }), this.ints([n, outH, outW, kh * kw * inChannels])], [n, outH, outW, patchSize]);
        let sum: string | undefined;
        for (let i = 0; i < kh; i++) {
          for (let j = 0; j < kw; j++) {
            const tap = (i * kw + j) * inChannels;
            const part = this.op('Slice', [patchGradient, this.ints([tap]), this.ints([tap + inChannels]), this.ints([3])], [n, outH, outW, inChannels]);
            const placed = this.op('Pad', [part, this.ints([0, i, j, 0, 0, padded[1] - outH - i, padded[2] - outW - j, 0])], padded);
            sum = sum ? this.op('Add', [sum, placed], padded) : placed;
          }
        }
        const inside = this.op('Slice', [sum!, this.ints([pads[0], pads[1]]), this.ints([pads[0] + h, pads[1] + w]), this.ints([1, 2])], [n, h, w, inChannels]);
        this.accumulate(x, this.op('Transpose', [inside], [n, inChannels, h, w], { perm: [0, 3, 1, 2] }));
      });
    });
  }

  /**
   * Training BatchNorm over every axis but the channel axis (1), with batch statistics; returns the
   * output and the batch mean and (biased) variance per channel. Activations are the bulk of a step's
   * memory traffic, so both directions touch them as few times as they can: the statistics in two
   * reductions, the output in one BatchNormalization, and the input gradient as k1·dy + k2·x + k3 per
   * channel in two more (each an affine BatchNormalization) and one Add.
   */
  batchNorm(x: string, gamma: string, beta: string, epsilon: number): { y: string; mean: string; variance: string } {
    const shape = this.shape(x);
    const channels = shape[1];
    const positions = shape.reduce((a, b) => a * b, 1) / channels;
    const axes = shape.map((_, axis) => axis).filter((axis) => axis !== 1);
    const vector = [channels];
    const perChannel = (value: string) => this.op('Reshape', [value, this.ints(vector)], vector);
    const mean = perChannel(this.op('ReduceMean', [x], shape.map((size, axis) => (axis === 1 ? size : 1)), { axes, keepdims: 1 }));
    const meanOfSquares = this.op('Div', [perChannel(this.op('ReduceSumSquare', [x], shape.map((size, axis) => (axis === 1 ? size : 1)), { axes, keepdims: 1 })), this.scalar(positions)], vector);
    // E[x²] − E[x]², kept ≥ 0 against rounding.
    const variance = this.op('Relu', [this.op('Sub', [meanOfSquares, this.op('Mul', [mean, mean], vector)], vector)], vector);
    const y = this.op('BatchNormalization', [x, gamma, beta, mean, variance], shape, { epsilon: { float: epsilon } });
    this.record([x, gamma, beta], y, (dy) => this.tagged('batchnorm_gradient/', () => {
      const inverse = this.op('Reciprocal', [this.op('Sqrt', [this.op('Add', [variance, this.scalar(epsilon)], vector)], vector)], vector);
      const sumDy = this.op('ReduceSum', [dy, this.ints(axes)], vector, { keepdims: 0 });
      const sumDyX = this.op('ReduceSum', [this.op('Mul', [dy, x], shape), this.ints(axes)], vector, { keepdims: 0 });
      // Σ dy·x̂ = (Σ dy·x − μ Σ dy) / σ
      const dGamma = this.op('Mul', [this.op('Sub', [sumDyX, this.op('Mul', [mean, sumDy], vector)], vector), inverse], vector);
      this.accumulate(beta, sumDy);
      this.accumulate(gamma, dGamma);
      if (this.needsGradient(x)) {
        // dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy·x̂)), expanded into k1·dy + k2·x + k3.
        const k1 = this.op('Mul', [gamma, inverse], vector);
        const slope = this.op('Mul', [this.op('Mul', [k1, inverse], vector), this.op('Div', [dGamma, this.scalar(positions)], vector)], vector);
        const k2 = this.op('Neg', [slope], vector);
        const k3 = this.op('Sub', [this.op('Mul', [slope, mean], vector), this.op('Mul', [k1, this.op('Div', [sumDy, this.scalar(positions)], vector)], vector)], vector);
        const zeros = this.floats(new Float32Array(channels), vector);
        // BatchNormalization with mean 0 and variance 1 − ε is the affine map a·v + b.
        const unit = this.floats(new Float32Array(channels).fill(1 - epsilon), vector);
        const affine = (value: string, scale: string, shift: string) => this.op('BatchNormalization', [value, scale, shift, zeros, unit], shape, { epsilon: { float: epsilon } });
        this.accumulate(x, this.op('Add', [affine(dy, k1, zeros), affine(x, k2, k3)], shape));
      }
    }));
    return { y, mean, variance };
  }

  transpose(x: string, perm: number[]): string {
    const shape = this.shape(x);
    const y = this.op('Transpose', [x], perm.map((axis) => shape[axis]), { perm });
    const inverse = perm.map((_, axis) => perm.indexOf(axis));
    return this.record([x], y, (dy) => this.accumulate(x, this.op('Transpose', [dy], shape, { perm: inverse })));
  }

  /** x · scale + shift, with constant `scale` and `shift` broadcast against x (a per-channel affine map). */
  scaleShift(x: string, scale: string, shift: string): string {
    const shape = this.shape(x);
    const y = this.op('Add', [this.op('Mul', [x, scale], shape), shift], shape);
    return this.record([x], y, (dy) => this.accumulate(x, this.op('Mul', [dy, scale], shape)));
  }

  relu(x: string): string {
    const shape = this.shape(x);
    const y = this.op('Relu', [x], shape);
    const zero = this.scalar(0);
    return this.record([x], y, (dy) => this.accumulate(x, this.tagged('relu_gradient/', () => this.op('Where', [this.op('Greater', [y, zero], shape), dy, zero], shape))));
  }

  add(a: string, b: string): string {
    const shape = this.shape(a);
    const y = this.op('Add', [a, b], shape);
    return this.record([a, b], y, (dy) => {
      this.accumulate(a, dy);
      this.accumulate(b, dy);
    });
  }

  /** Mean over the spatial axes of NCHW `x`: [n, c]. */
  spatialMean(x: string): string {
    const [n, c, h, w] = this.shape(x);
    const y = this.op('ReduceMean', [x], [n, c], { axes: [2, 3], keepdims: 0 });
    return this.record([x], y, (dy) => {
      const scaled = this.op('Mul', [dy, this.scalar(1 / (h * w))], [n, c]);
      const column = this.op('Reshape', [scaled, this.ints([n, c, 1, 1])], [n, c, 1, 1]);
      this.accumulate(x, this.op('Expand', [column, this.ints([n, c, h, w])], [n, c, h, w]));
    });
  }

  /** x [n, in] · weight [in, out] + bias [out]. */
  dense(x: string, weight: string, bias: string): string {
    const [n] = this.shape(x);
    const [inDim, outDim] = this.shape(weight);
    const y = this.op('Gemm', [x, weight, bias], [n, outDim]);
    return this.record([x, weight, bias], y, (dy) => {
      if (this.needsGradient(x)) this.accumulate(x, this.op('Gemm', [dy, weight], [n, inDim], { transB: 1 }));
      if (this.needsGradient(weight)) this.accumulate(weight, this.op('Gemm', [x, dy], [inDim, outDim], { transA: 1 }));
      if (this.needsGradient(bias)) this.accumulate(bias, this.op('ReduceSum', [dy, this.ints([0])], [outDim], { keepdims: 0 }));
    });
  }

  /** Rows of `x` scaled to unit length (norms below 1e-12 count as 1e-12). */
  l2NormalizeRows(x: string): string {
    const shape = this.shape(x);
    const column = [shape[0], 1];
    const norm = this.op('Max', [this.op('ReduceL2', [x], column, { axes: [1], keepdims: 1 }), this.scalar(1e-12)], column);
    const y = this.op('Div', [x, norm], shape);
    return this.record([x], y, (dy) => {
      const along = this.op('ReduceSum', [this.op('Mul', [dy, y], shape), this.ints([1])], column, { keepdims: 1 });
      this.accumulate(x, this.op('Div', [this.op('Sub', [dy, this.op('Mul', [y, along], shape)], shape), norm], shape));
    });
  }

  /** a [n, d] · bᵀ with b [k, d]: [n, k]. */
  matMulTransposed(a: string, b: string): string {
    const [n, d] = this.shape(a);
    const [k] = this.shape(b);
    const y = this.op('Gemm', [a, b], [n, k], { transB: 1 });
    return this.record([a, b], y, (dy) => {
      if (this.needsGradient(a)) this.accumulate(a, this.op('Gemm', [dy, b], [n, d]));
      if (this.needsGradient(b)) this.accumulate(b, this.op('Gemm', [dy, a], [k, d], { transA: 1 }));
    });
  }
}

function valueInfo(name: string, shape: number[]): ValueInfoMessage {
  return { name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: shape.map((dimValue) => ({ dimValue })) } } } };
}

function encodeAttributes(attributes: Attributes): AttributeMessage[] {
  return Object.entries(attributes).map(([name, value]) => {
    if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
    if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
    if (typeof value === 'object') return { name, type: AttributeType.FLOAT, f: value.float };
    return { name, type: AttributeType.INT, i: value };
  });
}
