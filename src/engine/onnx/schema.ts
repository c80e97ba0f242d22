// The part of the ONNX protobuf schema (onnx/onnx.proto, IR version 8) that Cluster Lens reads and writes.
// Field numbers follow the public schema; messages and fields we never touch are left out, which
// protobuf decoding skips safely.

import * as protobuf from 'protobufjs';

const onnxSubset = `
syntax = "proto2";
package onnx;

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
  optional string denotation = 6;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}

message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional bytes raw_data = 9;
  repeated double double_data = 10 [packed = true];
  optional string doc_string = 12;
  repeated StringStringEntryProto external_data = 13;
  optional int32 data_location = 14;
}

message AttributeProto {
  optional string name = 1;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  optional string doc_string = 13;
  optional int32 type = 20;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
  optional string domain = 7;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message ModelProto {
  optional int64 ir_version = 1;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
}
`;

/** TensorProto.DataType values we meet. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11 } as const;

/** AttributeProto.AttributeType values we meet. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

// Plain-object views of the messages, as `toObject` returns them with longs as numbers.
export interface TensorMessage {
  dims?: number[];
  dataType?: number;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: number[];
  name?: string;
  rawData?: Uint8Array;
  doubleData?: number[];
  docString?: string;
  externalData?: { key?: string; value?: string }[];
  dataLocation?: number;
}

export interface AttributeMessage {
  name?: string;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorMessage;
  g?: GraphMessage;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  docString?: string;
  type?: number;
}

export interface NodeMessage {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  attribute?: AttributeMessage[];
  docString?: string;
  domain?: string;
}

export interface DimensionMessage {
  dimValue?: number;
  dimParam?: string;
}

export interface ValueInfoMessage {
  name?: string;
  type?: { tensorType?: { elemType?: number; shape?: { dim?: DimensionMessage[] } } };
  docString?: string;
}

export interface GraphMessage {
  node?: NodeMessage[];
  name?: string;
  initializer?: TensorMessage[];
  docString?: string;
  input?: ValueInfoMessage[];
  output?: ValueInfoMessage[];
  valueInfo?: ValueInfoMessage[];
}

export interface ModelMessage {
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph?: GraphMessage;
  opsetImport?: { domain?: string; version?: number }[];
  metadataProps?: { key?: string; value?: string }[];
}

let root: protobuf.Root | undefined;

function schemaType(name: 'ModelProto' | 'GraphProto'): protobuf.Type {
  root ??= protobuf.parse(onnxSubset, { keepCase: false }).root;
  return root.lookupType(`onnx.${name}`);
}

function modelProto(): protobuf.Type {
  return schemaType('ModelProto');
}

/** Serialises a model; throws if a field has the wrong type. */
export function encodeModel(model: ModelMessage): Uint8Array {
  const type = modelProto();
  const problem = type.verify(model);
  if (problem) throw new Error(`Invalid ONNX model message: ${problem}`);
  return type.encode(type.fromObject(model)).finish();
}

/** Parses a serialised model into plain objects (int64 as numbers, bytes as Uint8Array). Throws on malformed protobuf. */
export function decodeModel(bytes: Uint8Array): ModelMessage {
  const type = modelProto();
  return type.toObject(type.decode(bytes), { longs: Number, defaults: false, arrays: true, oneofs: false }) as ModelMessage;
}

const graphField = 7; // ModelProto.graph

/**
 * The top-level fields of a serialised message, in order: each field's number, its payload when length-delimited
 * (submessages, strings, bytes), and its own bytes, tag included, for copying it unchanged.
 */
function* messageFields(message: Uint8Array): Generator<{ field: number; payload?: Uint8Array; raw: Uint8Array }> {
  const reader = protobuf.Reader.create(message);
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const tag = reader.uint32();
    let payload: Uint8Array | undefined;
    if ((tag & 7) === 2) payload = reader.bytes();
    else reader.skipType(tag & 7);
    yield { field: tag >>> 3, payload, raw: message.subarray(start, reader.pos) };
  }
}

/** A length-delimited field's header: its tag and length, to write before `length` bytes of payload. */
function fieldHeader(field: number, length: number): Uint8Array {
  return protobuf.Writer.create().uint32((field << 3) | 2).uint32(length).finish();
}

/**
 * Adds `extra` to a serialised model without re-encoding it: the graph's nodes, weights and outputs are
 * appended inside the one `graph` field (repeated fields concatenate), and other fields of `extra`
 * (metadata, doc string) follow at the top level. Everything the model holds that this schema does not
 * model (functions, training info, …) is copied byte for byte.
 */
export function appendToModel(model: Uint8Array, extra: ModelMessage): Uint8Array {
  const graphType = schemaType('GraphProto');
  const extraGraph = graphType.encode(graphType.fromObject(extra.graph ?? {})).finish();
  const extraModel = encodeModel({ ...extra, graph: undefined });
  const kept: Uint8Array[] = [];
  const graphs: Uint8Array[] = [];
  for (const { field, payload, raw } of messageFields(model)) {
    if (field === graphField && payload) graphs.push(payload);
    else kept.push(raw);
  }
  const graphLength = graphs.reduce((sum, part) => sum + part.length, 0) + extraGraph.length;
  return concatBytes([...kept, fieldHeader(graphField, graphLength), ...graphs, extraGraph, extraModel]);
}

const graphInputField = 11; // GraphProto.input
const valueInfoNameField = 1; // ValueInfoProto.name

/**
 * The model without the graph inputs named in `weights` (exports with keep_initializers_as_inputs list every weight
 * as an input too, and onnxruntime then treats them as values a caller may override: no constant folding, and a
 * warning per weight). Everything else is copied byte for byte; the model is returned as is when nothing goes.
 */
export function withoutWeightInputs(model: Uint8Array, weights: ReadonlySet<string>): Uint8Array {
  const nameOf = (valueInfo: Uint8Array): string | undefined => {
    for (const { field, payload } of messageFields(valueInfo)) {
      if (field === valueInfoNameField && payload) return protobuf.util.utf8.read(payload, 0, payload.length);
    }
    return undefined;
  };
  let dropped = 0;
  const rewriteGraph = (graph: Uint8Array): Uint8Array => {
    const parts: Uint8Array[] = [];
    for (const { field, payload, raw } of messageFields(graph)) {
      if (field === graphInputField && payload) {
        const name = nameOf(payload);
        if (name !== undefined && weights.has(name)) {
          dropped++;
          continue;
        }
      }
      parts.push(raw);
    }
    return concatBytes(parts);
  };
  const parts: Uint8Array[] = [];
  for (const { field, payload, raw } of messageFields(model)) {
    if (field === graphField && payload) {
      const graph = rewriteGraph(payload);
      parts.push(fieldHeader(graphField, graph.length), graph);
    } else {
      parts.push(raw);
    }
  }
  return dropped === 0 ? model : concatBytes(parts);
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
