// Reads an ONNX file into a checked, plain graph: typed weights, nodes in order, the image input.
// Every problem becomes an OnnxModelError naming the file and what is wrong, never a crash.

import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import { externalTensors, staysInFolder, WireFormatError } from './externalData';
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

/**
 * The largest ONNX file the engine reads, in one place: protobuf cannot hold a message over 2 GiB, so no ONNX
 * model with its weights inside is larger.
 */
export const maxOnnxFileBytes = 2 * 1024 ** 3;

export interface ReadModelOptions {
  /** Refuse a symbolic link instead of following it (a run's own copy, which is always a plain file). */
  noFollow?: boolean;
  /** Size cap in bytes; default maxOnnxFileBytes. */
  maxBytes?: number;
}

const kindOf = (stats: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean; isSymbolicLink(): boolean }) =>
  stats.isDirectory() ? 'a folder' : stats.isFIFO() ? 'a named pipe (FIFO)' : stats.isCharacterDevice() || stats.isBlockDevice() ? 'a device' : stats.isSocket() ? 'a socket' : stats.isSymbolicLink() ? 'a symbolic link' : 'not a regular file';

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(bytes < 1024 ** 3 ? 2 : 1)} GiB`;

/**
 * The bytes of a model file, read only when it is a regular file no larger than the cap: a FIFO, a device
 * (/dev/zero) or a folder is refused before it is opened, and the opened file is checked again (fstat), so that
 * one swapped in between cannot hang or flood the engine.
 */
export async function readModelBytes(file: string, options: ReadModelOptions = {}): Promise<Uint8Array> {
  const label = path.resolve(file);
  const maxBytes = options.maxBytes ?? maxOnnxFileBytes;
  const unreadable = (error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'it does not exist' : code === 'ELOOP' ? 'it is a symbolic link' : (error as Error).message;
    return new OnnxModelError('unreadable', label, `Cannot read the ONNX model ${label}: ${reason}. Pass the path of an .onnx file.`, {}, String(error));
  };
  const refuse = (problem: string, fix: string) => new OnnxModelError('refused', label, `Cannot read the ONNX model ${label}: ${problem}. ${fix}`);
  const check = (stats: import('node:fs').Stats) => {
    if (!stats.isFile()) {
      const fix = options.noFollow && stats.isSymbolicLink() ? 'Replace the link with the file itself.' : 'Pass the path of an .onnx file.';
      throw refuse(`it is ${kindOf(stats)}, not a regular file`, fix);
    }
    if (stats.size > maxBytes) throw refuse(`it is ${gib(stats.size)}, over the ${gib(maxBytes)} an ONNX model can hold`, 'Pass the path of an .onnx file with its weights inside it.');
  };
  let before: import('node:fs').Stats;
  try {
    before = options.noFollow ? await fs.lstat(label) : await fs.stat(label);
  } catch (error) {
    throw unreadable(error);
  }
  check(before);
  // O_NONBLOCK: should a FIFO be swapped in after the check, opening it does not wait for a writer.
  const flags = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0) | (options.noFollow ? (fsConstants.O_NOFOLLOW ?? 0) : 0);
  let handle: import('node:fs/promises').FileHandle;
  try {
    handle = await fs.open(label, flags);
  } catch (error) {
    throw unreadable(error);
  }
  try {
    const stats = await handle.stat();
    check(stats);
    if (stats.ino !== before.ino || stats.dev !== before.dev) throw refuse('it was replaced while being opened', 'Try again once nothing else writes to it.');
    // Read at most the size it had when opened: a file that grows meanwhile cannot take more.
    const bytes = Buffer.allocUnsafe(stats.size);
    let filled = 0;
    while (filled < bytes.length) {
      const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return bytes.subarray(0, filled);
  } catch (error) {
    if (error instanceof OnnxModelError) throw error;
    throw unreadable(error);
  } finally {
    await handle.close();
  }
}

/** Reads and checks an ONNX file. */
export async function readOnnxFile(file: string, options: ReadModelOptions = {}): Promise<{ bytes: Uint8Array; graph: OnnxGraph }> {
  const label = path.resolve(file);
  const bytes = await readModelBytes(label, options);
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
  refuseExternalData(bytes, file);
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

/**
 * Refuses a model any of whose tensors keeps its data in another file, wherever the tensor sits (subgraphs,
 * attributes, functions included): onnxruntime is given the bytes, not the path, and would read such a location
 * relative to the engine's working directory. A location outside the model's folder is named as such; none is
 * ever opened.
 */
function refuseExternalData(bytes: Uint8Array, file: string): void {
  let found;
  try {
    found = externalTensors(bytes);
  } catch (error) {
    if (!(error instanceof WireFormatError)) throw error;
    throw new OnnxModelError('corrupt', file, `The ONNX model ${file} is not usable: it is not a valid ONNX protobuf (${error.message}). Export it again.`, {}, String(error));
  }
  if (found.length === 0) return;
  const outside = found.find((tensor) => tensor.location === undefined || !staysInFolder(tensor.location));
  const others = found.length > 1 ? ` (${found.length} tensors in all keep their data in other files)` : '';
  if (outside) {
    const where = outside.location === undefined ? 'another file, with no location given' : `'${outside.location}', outside the model's folder ${path.dirname(file)}`;
    throw new OnnxModelError(
      'refused',
      file,
      `The ONNX model ${file} is refused: ${outside.where} points to data in ${where}${others}. Cluster Lens reads no file outside the model, and no file a model points to; export it with its weights inside the .onnx file.`,
      { tensor: outside.name },
    );
  }
  const [first] = found;
  throw new OnnxModelError(
    'unsupported',
    file,
    `The ONNX model ${file} keeps the weights of ${first.where} in a separate file ('${first.location}')${others}. Export it with the weights inside the .onnx file (for small models, torch.onnx.export does so by default).`,
    { tensor: first.name },
  );
}

const elementTypeNames: Record<number, string> = { 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 8: 'string', 9: 'bool', 12: 'uint32', 13: 'uint64', 14: 'complex64', 15: 'complex128', 16: 'bfloat16' };

/** Bytes per value in raw_data of the element types Cluster Lens decodes. */
const bytesPerValue: Record<number, number> = { [DataType.FLOAT]: 4, [DataType.DOUBLE]: 8, [DataType.FLOAT16]: 2, [DataType.INT64]: 8, [DataType.INT32]: 4 };

/**
 * Decodes a TensorProto's data, checking that its size matches its shape before anything is allocated: the
 * shape's element count must be what the file holds for it (raw_data's length, or the typed field's), so
 * declared dims of 1e10 are a clear error, not an allocation failure.
 */
export function toConstant(tensor: TensorMessage, file: string, what: string): OnnxConstant {
  const name = tensor.name ?? '';
  const dims = tensor.dims ?? [];
  const fail = (problem: string) => new OnnxModelError('corrupt', file, `The ONNX model ${file} is not usable: ${what} ${problem}. Export it again.`, { tensor: name });
  if (dims.some((dim) => !Number.isSafeInteger(dim) || dim < 0)) throw fail(`has an invalid shape [${dims.join(', ')}]`);
  if (tensor.dataLocation === 1 || (tensor.externalData?.length ?? 0) > 0) {
    const location = tensor.externalData?.find((entry) => entry.key === 'location')?.value ?? '?';
    throw new OnnxModelError(
      'unsupported',
      file,
      `The ONNX model ${file} keeps the weights of ${what} in a separate file (${location}). Export it with the weights inside the .onnx file (for small models, torch.onnx.export does so by default).`,
      { tensor: name },
    );
  }
  const dataType = tensor.dataType ?? 0;
  const size = bytesPerValue[dataType];
  if (size === undefined) {
    throw new OnnxModelError(
      'unsupported',
      file,
      `The ONNX model ${file} stores ${what} as ${elementTypeNames[dataType] ?? `data type ${tensor.dataType ?? 'none'}`}; Cluster Lens reads float32, float16, double, int32 and int64 tensors. Export the model in float32.`,
      { tensor: name },
    );
  }
  // A product of safe integers can pass 2^53; it is then compared, never allocated.
  const count = dims.reduce((product, dim) => product * dim, 1);
  const raw = tensor.rawData && tensor.rawData.length > 0 ? tensor.rawData : undefined;
  const shape = `[${dims.join(', ')}]`;
  if (raw) {
    if (raw.length !== count * size) throw fail(`has ${raw.length} bytes of data, but its shape ${shape} needs ${count * size}`);
  } else {
    // Without raw data: float in float_data, double in double_data, int64 in int64_data, int32 and float16 (as bit patterns) in int32_data.
    const typed = dataType === DataType.FLOAT ? tensor.floatData : dataType === DataType.DOUBLE ? tensor.doubleData : dataType === DataType.INT64 ? tensor.int64Data : tensor.int32Data;
    const length = typed?.length ?? 0;
    if (length !== count) throw fail(`has ${length} values, but its shape ${shape} needs ${count}`);
  }
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  switch (dataType) {
    case DataType.FLOAT: {
      const data = new Float32Array(count);
      if (view) for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, true);
      else data.set(tensor.floatData ?? []);
      return { name, dims, kind: 'float', data };
    }
    case DataType.DOUBLE: {
      const data = new Float32Array(count);
      if (view) for (let i = 0; i < count; i++) data[i] = view.getFloat64(i * 8, true);
      else data.set(tensor.doubleData ?? []);
      return { name, dims, kind: 'float', data };
    }
    case DataType.FLOAT16: {
      const data = Float32Array.from({ length: count }, (_, i) => halfToFloat(view ? view.getUint16(i * 2, true) : tensor.int32Data![i]));
      return { name, dims, kind: 'float', data };
    }
    case DataType.INT64: {
      const data = view ? Array.from({ length: count }, (_, i) => Number(view.getBigInt64(i * 8, true))) : [...(tensor.int64Data ?? [])];
      return { name, dims, kind: 'int', data };
    }
    default: {
      const data = view ? Array.from({ length: count }, (_, i) => view.getInt32(i * 4, true)) : [...(tensor.int32Data ?? [])];
      return { name, dims, kind: 'int', data };
    }
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
