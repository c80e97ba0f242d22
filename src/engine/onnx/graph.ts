// Reads an ONNX file into a checked, plain graph: typed weights, nodes in order, the image input.
// Every problem becomes an OnnxModelError naming the file and what is wrong, never a crash.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeNode, OnnxModelError } from './onnxError';
import { AttributeType, DataType, decodeModel, type AttributeMessage, type ModelMessage, type TensorMessage, type ValueInfoMessage } from './schema';

/** A constant tensor: float weights as Float32Array, integer data (shapes, axes) as plain numbers. */
export type OnnxConstant =
  | { name: string; dims: number[]; kind: 'float'; data: Float32Array }
  | { name: string; dims: number[]; kind: 'int'; data: number[] };

export type OnnxAttribute = number | number[] | string | OnnxConstant;

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  /** Input value names; '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attributes: Map<string, OnnxAttribute>;
}

export interface OnnxValueInfo {
  name: string;
  elemType: number;
  /** A number for a fixed size, a string for a named (dynamic) one, undefined when unknown. */
  dims: (number | string | undefined)[] | undefined;
}

export interface OnnxGraph {
  /** The file it came from (or a label), for messages. */
  file: string;
  /** The default-domain operator set version. */
  opset: number;
  producer: string;
  /** Graph inputs that are not weights; a backbone has exactly one, the images. */
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  nodes: OnnxNode[];
  initializers: Map<string, OnnxConstant>;
  metadata: Map<string, string>;
  docString: string;
}

/** Reads and checks an ONNX file. */
export async function readOnnxFile(file: string): Promise<{ bytes: Uint8Array; graph: OnnxGraph }> {
  const label = path.resolve(file);
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(label);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (error as Error).message;
    throw new OnnxModelError('unreadable', label, `Cannot read the ONNX model ${label}: ${reason}. Pass the path of an .onnx file.`, {}, String(error));
  }
  return { bytes, graph: parseOnnx(bytes, label) };
}

/** Parses and checks serialised ONNX; `file` names it in errors. */
export function parseOnnx(bytes: Uint8Array, file: string): OnnxGraph {
  const corrupt = (problem: string, detail?: string) =>
    new OnnxModelError('corrupt', file, `The ONNX model ${file} is not usable: ${problem}. Export it again (torch.onnx.export, for example).`, {}, detail);
  if (bytes.length === 0) throw corrupt('the file is empty');
  let model: ModelMessage;
  try {
    model = decodeModel(bytes);
  } catch (error) {
    throw corrupt(`it is not a valid ONNX protobuf (${(error as Error).message}); the file may be truncated or not an ONNX model at all`, String(error));
  }
  const graph = model.graph;
  if (!graph || !graph.node?.length) throw corrupt('it holds no graph (no nodes); it may be truncated or not an ONNX model at all');
  const opset = (model.opsetImport ?? []).find((entry) => !entry.domain || entry.domain === 'ai.onnx')?.version;
  if (opset === undefined) throw corrupt('it declares no version of the standard operator set (opset_import)');

  const initializers = new Map<string, OnnxConstant>();
  for (const tensor of graph.initializer ?? []) {
    const constant = toConstant(tensor, file, `initializer '${tensor.name ?? ''}'`);
    initializers.set(constant.name, constant);
  }
  const inputs = (graph.input ?? []).filter((input) => !initializers.has(input.name ?? '')).map(toValueInfo);
  const outputs = (graph.output ?? []).map(toValueInfo);
  if (inputs.length === 0) throw corrupt('the graph has no input');
  if (outputs.length === 0) throw corrupt('the graph has no output');

  const known = new Set<string>([...initializers.keys(), ...inputs.map((input) => input.name)]);
  const nodes: OnnxNode[] = graph.node.map((message, position) => {
    const node: OnnxNode = {
      name: message.name ?? '',
      opType: message.opType ?? '',
      domain: message.domain ?? '',
      inputs: message.input ?? [],
      outputs: message.output ?? [],
      attributes: new Map(),
    };
    if (!node.opType) throw corrupt(`node ${position} has no operator type`);
    for (const attribute of message.attribute ?? []) {
      node.attributes.set(attribute.name ?? '', toAttribute(attribute, file, node));
    }
    for (const input of node.inputs) {
      if (input && !known.has(input)) {
        throw new OnnxModelError(
          'corrupt',
          file,
          `The ONNX model ${file} is not usable: ${describeNode(node)} reads '${input}', which nothing before it produces (the graph is incomplete or out of order). Export it again.`,
          { operator: node.opType, node: node.name },
        );
      }
    }
    node.outputs.forEach((output) => output && known.add(output));
    return node;
  });
  for (const output of outputs) {
    if (!known.has(output.name)) throw corrupt(`the graph output '${output.name}' is produced by no node`);
  }
  return {
    file,
    opset,
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    inputs,
    outputs,
    nodes,
    initializers,
    metadata: new Map((model.metadataProps ?? []).map((entry) => [entry.key ?? '', entry.value ?? ''])),
    docString: model.docString ?? '',
  };
}

function toValueInfo(value: ValueInfoMessage): OnnxValueInfo {
  const tensor = value.type?.tensorType;
  return {
    name: value.name ?? '',
    elemType: tensor?.elemType ?? 0,
    dims: tensor?.shape?.dim?.map((dim) => (dim.dimValue !== undefined ? dim.dimValue : dim.dimParam !== undefined && dim.dimParam !== '' ? dim.dimParam : undefined)),
  };
}

function toAttribute(attribute: AttributeMessage, file: string, node: OnnxNode): OnnxAttribute {
  // Models from before IR version 2 leave `type` out; the field that is set says it.
  const type =
    attribute.type ??
    (attribute.t ? AttributeType.TENSOR : attribute.ints?.length ? AttributeType.INTS : attribute.floats?.length ? AttributeType.FLOATS : attribute.s ? AttributeType.STRING : attribute.i !== undefined ? AttributeType.INT : attribute.f !== undefined ? AttributeType.FLOAT : undefined);
  switch (type) {
    case AttributeType.FLOAT:
      return attribute.f ?? 0;
    case AttributeType.INT:
      return attribute.i ?? 0;
    case AttributeType.STRING:
      return Buffer.from(attribute.s ?? new Uint8Array()).toString('utf8');
    case AttributeType.FLOATS:
      return attribute.floats ?? [];
    case AttributeType.INTS:
      return attribute.ints ?? [];
    case AttributeType.TENSOR:
      return toConstant(attribute.t ?? {}, file, `the '${attribute.name}' tensor of ${describeNode(node)}`);
    default:
      // Graph and string-list attributes (If, Loop, …) mean an operator we reject later by name.
      return [];
  }
}

const elementTypeNames: Record<number, string> = { 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 8: 'string', 9: 'bool', 12: 'uint32', 13: 'uint64', 14: 'complex64', 15: 'complex128', 16: 'bfloat16' };

/** Decodes a TensorProto's data, checking that its size matches its shape. */
export function toConstant(tensor: TensorMessage, file: string, what: string): OnnxConstant {
  const name = tensor.name ?? '';
  const dims = tensor.dims ?? [];
  const count = dims.reduce((product, dim) => product * dim, 1);
  const fail = (problem: string) => new OnnxModelError('corrupt', file, `The ONNX model ${file} is not usable: ${what} ${problem}. Export it again.`);
  if (dims.some((dim) => !Number.isInteger(dim) || dim < 0)) throw fail(`has an invalid shape [${dims.join(', ')}]`);
  if (tensor.dataLocation === 1) {
    const location = tensor.externalData?.find((entry) => entry.key === 'location')?.value ?? '?';
    throw new OnnxModelError(
      'unsupported',
      file,
      `The ONNX model ${file} keeps the weights of ${what} in a separate file (${location}). Export it with the weights inside the .onnx file (for small models, torch.onnx.export does so by default).`,
    );
  }
  const raw = tensor.rawData && tensor.rawData.length > 0 ? tensor.rawData : undefined;
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  const checkBytes = (bytesPerValue: number) => {
    if (raw && raw.length !== count * bytesPerValue) {
      throw fail(`has ${raw.length} bytes of data, but its shape [${dims.join(', ')}] needs ${count * bytesPerValue}`);
    }
  };
  const checkCount = (length: number) => {
    if (length !== count) throw fail(`has ${length} values, but its shape [${dims.join(', ')}] needs ${count}`);
  };
  switch (tensor.dataType) {
    case DataType.FLOAT: {
      checkBytes(4);
      const data = new Float32Array(count);
      if (view) for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, true);
      else {
        checkCount(tensor.floatData?.length ?? 0);
        data.set(tensor.floatData ?? []);
      }
      return { name, dims, kind: 'float', data };
    }
    case DataType.DOUBLE: {
      checkBytes(8);
      const data = new Float32Array(count);
      if (view) for (let i = 0; i < count; i++) data[i] = view.getFloat64(i * 8, true);
      else {
        checkCount(tensor.doubleData?.length ?? 0);
        data.set(tensor.doubleData ?? []);
      }
      return { name, dims, kind: 'float', data };
    }
    case DataType.FLOAT16: {
      checkBytes(2);
      // Without raw data, float16 values sit one per int32_data entry, as bit patterns.
      if (!view) checkCount(tensor.int32Data?.length ?? 0);
      const data = Float32Array.from({ length: count }, (_, i) => halfToFloat(view ? view.getUint16(i * 2, true) : tensor.int32Data![i]));
      return { name, dims, kind: 'float', data };
    }
    case DataType.INT64: {
      checkBytes(8);
      if (!view) checkCount(tensor.int64Data?.length ?? 0);
      const data = view ? Array.from({ length: count }, (_, i) => Number(view.getBigInt64(i * 8, true))) : [...tensor.int64Data!];
      return { name, dims, kind: 'int', data };
    }
    case DataType.INT32: {
      checkBytes(4);
      if (!view) checkCount(tensor.int32Data?.length ?? 0);
      const data = view ? Array.from({ length: count }, (_, i) => view.getInt32(i * 4, true)) : [...tensor.int32Data!];
      return { name, dims, kind: 'int', data };
    }
    default:
      throw new OnnxModelError(
        'unsupported',
        file,
        `The ONNX model ${file} stores ${what} as ${elementTypeNames[tensor.dataType ?? 0] ?? `data type ${tensor.dataType ?? 'none'}`}; Cluster Lens reads float32, float16, double, int32 and int64 tensors. Export the model in float32.`,
      );
  }
}

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** The one image input of a backbone: float32 [N, C, H, W] with a fixed channel count. */
export function imageInput(graph: OnnxGraph): { name: string; channels: number; heightPx?: number; widthPx?: number } {
  const fail = (problem: string) =>
    new OnnxModelError('unsupported', graph.file, `The ONNX model ${graph.file} is not an image backbone Cluster Lens can use: ${problem}. It needs one float32 input of shape [batch, channels, height, width].`);
  if (graph.inputs.length !== 1) throw fail(`it has ${graph.inputs.length} inputs (${graph.inputs.map((input) => input.name).join(', ')})`);
  const [input] = graph.inputs;
  if (input.elemType !== DataType.FLOAT) throw fail(`its input '${input.name}' is not float32`);
  const dims = input.dims;
  if (!dims || dims.length !== 4) throw fail(`its input '${input.name}' has shape [${dims?.map((dim) => dim ?? '?').join(', ') ?? 'unknown'}]`);
  const [, channels, height, width] = dims;
  if (typeof channels !== 'number' || (channels !== 1 && channels !== 3)) throw fail(`its input '${input.name}' has ${channels ?? 'unknown'} channels, not 1 or 3`);
  return { name: input.name, channels, heightPx: typeof height === 'number' ? height : undefined, widthPx: typeof width === 'number' ? width : undefined };
}

/** Reads an integer list attribute, or the fallback when absent. */
export function intsAttribute(node: OnnxNode, name: string, fallback: number[]): number[] {
  const value = node.attributes.get(name);
  return Array.isArray(value) ? value : fallback;
}

export function intAttribute(node: OnnxNode, name: string, fallback: number): number {
  const value = node.attributes.get(name);
  return typeof value === 'number' ? value : fallback;
}

export function floatAttribute(node: OnnxNode, name: string, fallback: number): number {
  const value = node.attributes.get(name);
  return typeof value === 'number' ? value : fallback;
}

export function stringAttribute(node: OnnxNode, name: string, fallback: string): string {
  const value = node.attributes.get(name);
  return typeof value === 'string' ? value : fallback;
}
