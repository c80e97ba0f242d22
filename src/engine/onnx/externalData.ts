// Finds every tensor in a serialised ONNX model that keeps its data in another file, wherever it sits: the
// graph's initializers and sparse initializers, tensor attributes (Constant's value, …), the graphs of If, Loop
// and Scan nodes (recursively), functions and training graphs. onnxruntime gets the model's bytes, not its
// path, so it would resolve such a location against the engine's working directory: the engine refuses them
// all before any session opens.
//
// This walks the protobuf wire format with the full ONNX schema's field numbers, not the subset schema.ts
// decodes, so that a field the subset leaves out (sparse_initializer, graphs, functions) cannot hide one.

import path from 'node:path';
import * as protobuf from 'protobufjs';

/** A tensor whose data lives in another file. */
export interface ExternalTensor {
  /** Its name, '' when the exporter left it empty. */
  name: string;
  /** Where it sits, for messages: "initializer 'w' in the 'then_branch' graph of node 'if' (If)". */
  where: string;
  /** The `location` entry of its external_data, undefined when it has none. */
  location: string | undefined;
}

type Kind = 'model' | 'training' | 'function' | 'graph' | 'node' | 'attribute' | 'sparse' | 'tensor';

/** The fields of each message that hold messages that can lead to a TensorProto (onnx/onnx.proto, IR 10). */
const children: Record<Exclude<Kind, 'tensor'>, Record<number, Kind>> = {
  // graph, training_info, functions
  model: { 7: 'graph', 20: 'training', 25: 'function' },
  // initialization, algorithm
  training: { 1: 'graph', 2: 'graph' },
  // node, attribute_proto
  function: { 7: 'node', 11: 'attribute' },
  // node, initializer, sparse_initializer
  graph: { 1: 'node', 5: 'tensor', 15: 'sparse' },
  // attribute
  node: { 5: 'attribute' },
  // t, g, tensors, graphs, sparse_tensor, sparse_tensors
  attribute: { 5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse', 23: 'sparse' },
  // values, indices
  sparse: { 1: 'tensor', 2: 'tensor' },
};

/** Name fields, for messages: NodeProto.name / op_type, AttributeProto.name, FunctionProto.name, TensorProto.name. */
const nameField = { node: 3, opType: 4, attribute: 1, function: 1, tensor: 8 } as const;
const tensorExternalData = 13;
const tensorDataLocation = 14;
const externalDataLocationExternal = 1;

/** As deep as protobuf's own parser goes by default (onnxruntime refuses deeper models anyway). */
const maxDepth = 100;

export class WireFormatError extends Error {}

interface Field {
  field: number;
  wireType: number;
  payload?: Uint8Array;
  varint?: number;
}

function fieldsOf(message: Uint8Array): Field[] {
  const reader = protobuf.Reader.create(message);
  const fields: Field[] = [];
  try {
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      const wireType = tag & 7;
      const field = tag >>> 3;
      if (field === 0) throw new WireFormatError('a field numbered 0');
      if (wireType === 2) {
        const length = reader.uint32();
        if (length > reader.len - reader.pos) throw new WireFormatError('a field longer than the data left');
        fields.push({ field, wireType, payload: message.subarray(reader.pos, reader.pos + length) });
        reader.pos += length;
      } else if (wireType === 0 && field === tensorDataLocation) {
        // The one varint that matters (TensorProto.data_location); other scalars, however many, are skipped.
        fields.push({ field, wireType, varint: reader.int32() });
      } else {
        reader.skipType(wireType);
      }
    }
  } catch (error) {
    if (error instanceof WireFormatError) throw error;
    throw new WireFormatError((error as Error).message);
  }
  return fields;
}

const text = (payload: Uint8Array | undefined) => (payload ? protobuf.util.utf8.read(payload, 0, payload.length) : '');

function stringField(fields: Field[], number: number): string {
  // Protobuf keeps the last value of a repeated scalar field.
  let value = '';
  for (const field of fields) if (field.field === number && field.wireType === 2) value = text(field.payload);
  return value;
}

/** Where a message sits, for messages: the graphs around it, and the node it belongs to. */
interface Scope {
  /** " in the 'then_branch' graph of node 'if' (If)", '' at the top level. */
  within: string;
  /** "node 'c' (Constant)" for an attribute's contents. */
  owner?: string;
  /** For a tensor: its description from its name. */
  describe?: (name: string) => string;
}

const named = (name: string) => (name ? ` '${name}'` : '');

/** Every tensor in `model` (serialised ModelProto) whose data is external; throws WireFormatError on malformed data. */
export function externalTensors(model: Uint8Array): ExternalTensor[] {
  const found: ExternalTensor[] = [];
  const visit = (message: Uint8Array, kind: Kind, scope: Scope, depth: number): void => {
    if (depth > maxDepth) throw new WireFormatError(`graphs nested more than ${maxDepth} deep`);
    const fields = fieldsOf(message);
    if (kind === 'tensor') {
      const entries = fields.filter((field) => field.field === tensorExternalData && field.wireType === 2).map((field) => fieldsOf(field.payload!));
      const locations = fields.filter((field) => field.field === tensorDataLocation && field.wireType === 0);
      if (entries.length > 0 || locations.some((field) => field.varint === externalDataLocationExternal)) {
        const name = stringField(fields, nameField.tensor);
        const entry = entries.find((entryFields) => stringField(entryFields, 1) === 'location');
        found.push({ name, where: scope.describe!(name), location: entry ? stringField(entry, 2) : undefined });
      }
      return;
    }
    let inner: (child: Kind, field: number) => Scope;
    switch (kind) {
      case 'model':
        inner = (child) => (child === 'training' ? { within: ' in the training information' } : { within: '' });
        break;
      case 'training':
        inner = (_, field) => ({ within: `${field === 1 ? ' in the initialization graph' : ' in the algorithm graph'}${scope.within}` });
        break;
      case 'function': {
        const within = ` in function '${stringField(fields, nameField.function)}'${scope.within}`;
        inner = (child) => (child === 'node' ? { within } : { within, owner: 'the function' });
        break;
      }
      case 'graph':
        inner = (child) =>
          child === 'node'
            ? { within: scope.within }
            : { within: scope.within, describe: (name) => `${child === 'tensor' ? 'initializer' : 'sparse initializer'}${named(name)}${scope.within}` };
        break;
      case 'node': {
        const name = stringField(fields, nameField.node);
        const opType = stringField(fields, nameField.opType) || 'nameless';
        inner = () => ({ within: scope.within, owner: name ? `node '${name}' (${opType})` : `a ${opType} node` });
        break;
      }
      case 'attribute': {
        const attribute = stringField(fields, nameField.attribute);
        const owner = scope.owner ?? 'a node';
        inner = (child) =>
          child === 'graph'
            ? { within: ` in the '${attribute}' graph of ${owner}${scope.within}` }
            : child === 'tensor'
              ? { within: scope.within, describe: (name) => `the '${attribute}' tensor${named(name)} of ${owner}${scope.within}` }
              : { within: scope.within, describe: (name) => `the '${attribute}' sparse tensor${named(name)} of ${owner}${scope.within}` };
        break;
      }
      case 'sparse':
        inner = (_, field) => ({ within: scope.within, describe: (name) => `${field === 1 ? 'the values' : 'the indices'} of ${scope.describe!(name)}` });
        break;
    }
    const table = children[kind];
    for (const field of fields) {
      const child = table[field.field];
      if (!child || field.wireType !== 2) continue;
      visit(field.payload!, child, inner(child, field.field), depth + 1);
    }
  };
  visit(model, 'model', { within: '' }, 0);
  return found;
}

/** Whether `location`, taken relative to the model's folder, stays inside it (lexically: the file is never touched). */
export function staysInFolder(location: string): boolean {
  if (!location || path.isAbsolute(location) || path.win32.isAbsolute(location) || /^[a-zA-Z]:/.test(location)) return false;
  const normal = path.posix.normalize(location.replace(/\\/g, '/'));
  return normal !== '..' && !normal.startsWith('../') && normal !== '.';
}
