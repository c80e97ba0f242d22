// Hostile and broken model files (issue #26): what the engine opens is a regular file under the size cap; no
// tensor anywhere in a model (subgraphs, attributes, sparse initializers, functions) makes it read another file;
// declared shapes are checked against the data before anything is allocated; an absurd fixed input size is
// named as the model's. Every fixture is built here with the project's own ONNX writer.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as protobuf from 'protobufjs';
import { silentContext } from '../../../src/engine/jobContext';
import { OrtBackbone } from '../../../src/engine/frozen/ortBackbone';
import { trainFrozenBackbone } from '../../../src/engine/jobs/trainFrozen';
import { resolveBackboneInput } from '../../../src/engine/onnx/backboneInput';
import { externalTensors } from '../../../src/engine/onnx/externalData';
import { maxOnnxFileBytes, parseOnnx, readModelBytes, readOnnxFile } from '../../../src/engine/onnx/graph';
import { OnnxModelError } from '../../../src/engine/onnx/onnxError';
import { AttributeType, DataType, encodeModel, type GraphMessage, type ModelMessage, type TensorMessage, type ValueInfoMessage } from '../../../src/engine/onnx/schema';
import { OrtModel } from '../../../src/engine/runtime/session';
import { tempDir } from '../../tempDir';
import { fixtures } from './helpers';

process.env.CLUSTER_LENS_THREADS ??= '1';
const scratch = tempDir('cl-hostile-');
const modelsDir = path.join(scratch, 'models');
const canaryDir = path.join(scratch, 'elsewhere');
mkdirSync(modelsDir);
mkdirSync(canaryDir);
/** Outside the models' folder: four bytes, the float 7. A model that reads it scales its features by 7. */
const canary = path.join(canaryDir, 'canary.bin');
writeFileSync(canary, Buffer.from(new Float32Array([7]).buffer));
const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
utimesSync(canary, twoDaysAgo, twoDaysAgo);
const canaryAtime = () => statSync(canary).atimeMs;
const canaryAtimeBefore = canaryAtime();

const floatInput = (name: string, dims: (number | string)[]): ValueInfoMessage => ({
  name,
  type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((dim) => (typeof dim === 'number' ? { dimValue: dim } : { dimParam: dim })) } } },
});
const external = (name: string, location: string, dims = [1]): TensorMessage => ({
  name,
  dims,
  dataType: DataType.FLOAT,
  dataLocation: 1,
  externalData: [
    { key: 'location', value: location },
    { key: 'length', value: String(4 * dims.reduce((a, b) => a * b, 1)) },
  ],
});
const inline = (name: string, values: number[], dims = [values.length]): TensorMessage => ({ name, dims, dataType: DataType.FLOAT, floatData: values });

/**
 * images [N, 1, 8, 8] → global average pool → [N, 1] → × scale → features. `scale` comes from `scaleNodes`
 * (default: an inline initializer of 1), so a model whose scale is read from the canary shows it in its features.
 */
function backbone(options: { scale?: TensorMessage; scaleNodes?: GraphMessage['node']; extraInitializers?: TensorMessage[]; inputDims?: (number | string)[] } = {}): ModelMessage {
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'hostile-test',
    graph: {
      name: 'hostile',
      node: [
        { opType: 'GlobalAveragePool', input: ['images'], output: ['gap'], name: 'gap' },
        { opType: 'Flatten', input: ['gap'], output: ['pooled'], name: 'flatten' },
        ...(options.scaleNodes ?? []),
        { opType: 'Mul', input: ['pooled', 'scale'], output: ['features'], name: 'mul' },
      ],
      initializer: [...(options.scaleNodes ? [] : [options.scale ?? inline('scale', [1])]), ...(options.extraInitializers ?? [])],
      input: [floatInput('images', options.inputDims ?? ['N', 1, 8, 8])],
      output: [floatInput('features', ['N', 1])],
    },
  };
}

/** `scale` from an If whose then-branch (always taken: the mean of the images is above −1) holds `weight`. */
function ifModel(weight: TensorMessage, elseNodes: GraphMessage['node'] = []): ModelMessage {
  return backbone({
    extraInitializers: [inline('minus_one', [-1], [])],
    scaleNodes: [
      { opType: 'ReduceMean', input: ['images'], output: ['mean'], name: 'mean', attribute: [{ name: 'keepdims', type: AttributeType.INT, i: 0 }] },
      { opType: 'Greater', input: ['mean', 'minus_one'], output: ['cond'], name: 'cond' },
      {
        opType: 'If',
        input: ['cond'],
        output: ['scale'],
        name: 'branch',
        attribute: [
          { name: 'then_branch', type: AttributeType.GRAPH, g: { name: 'then', node: [{ opType: 'Identity', input: [weight.name!], output: ['then_out'] }], initializer: [weight], output: [floatInput('then_out', [1])] } },
          {
            name: 'else_branch',
            type: AttributeType.GRAPH,
            g: {
              name: 'else',
              node: [...elseNodes, { opType: 'Constant', output: ['else_out'], attribute: [{ name: 'value', type: AttributeType.TENSOR, t: inline('one', [1]) }] }],
              output: [floatInput('else_out', [1])],
            },
          },
        ],
      },
    ],
  });
}

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(modelsDir, name);
  writeFileSync(file, bytes);
  return file;
}

/** Appends serialised fields to the model's one graph field (what the subset writer cannot say: sparse initializers). */
function withGraphFields(model: Uint8Array, extra: Uint8Array): Uint8Array {
  const reader = protobuf.Reader.create(model);
  const parts: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const tag = reader.uint32();
    if (tag >>> 3 === 7 && (tag & 7) === 2) {
      const graph = reader.bytes();
      parts.push(protobuf.Writer.create().uint32(tag).bytes(Buffer.concat([graph, extra])).finish());
    } else {
      reader.skipType(tag & 7);
      parts.push(model.subarray(start, reader.pos));
    }
  }
  return new Uint8Array(Buffer.concat(parts));
}

/** A serialised TensorProto with external data, for hand-built fields. */
function externalTensorBytes(name: string, location: string): Uint8Array {
  const entry = (key: string, value: string) => protobuf.Writer.create().uint32((1 << 3) | 2).string(key).uint32((2 << 3) | 2).string(value).finish();
  return protobuf.Writer.create()
    .uint32((1 << 3) | 0).int64(1) // dims
    .uint32((2 << 3) | 0).int32(DataType.FLOAT) // data_type
    .uint32((8 << 3) | 2).string(name)
    .uint32((13 << 3) | 2).bytes(entry('location', location))
    .uint32((14 << 3) | 0).int32(1) // data_location: EXTERNAL
    .finish();
}

/** Rejects within `ms` (a FIFO opened for reading would otherwise hang the test, not fail it). */
async function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not return within ${ms} ms: it hangs`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function assertRefused(error: unknown, file: string, code: string, ...patterns: RegExp[]): true {
  assert.ok(error instanceof OnnxModelError, `an OnnxModelError, not ${String(error)}`);
  assert.equal(error.code, code, error.message);
  assert.ok(error.message.includes(file), `the message names ${file}: ${error.message}`);
  for (const pattern of patterns) assert.match(error.message, pattern);
  assert.doesNotMatch(error.message, /please report|INTERNAL|Setting "/);
  return true;
}

test('hostile models: a FIFO, /dev/zero and a folder are refused at once, before they are opened', { skip: process.platform === 'win32' && 'no FIFOs or /dev/zero on Windows', timeout: 20_000 }, async () => {
  const fifo = path.join(modelsDir, 'pipe.onnx');
  execFileSync('mkfifo', [fifo]);
  try {
    for (const open of [() => readOnnxFile(fifo), () => OrtBackbone.open(fifo), () => readModelBytes(fifo)] as (() => Promise<unknown>)[]) {
      await assert.rejects(settlesWithin(open(), 3000, 'reading a FIFO'), (error) => assertRefused(error, fifo, 'BAD_MODEL', /named pipe \(FIFO\), not a regular file/));
    }
    // Nobody holds the FIFO open for reading: opening its write end without blocking finds no reader.
    assert.throws(() => openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK), /ENXIO/);
  } finally {
    // Should a read have started after all, give it a writer so that no thread stays blocked.
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // no reader: as it should be
    }
  }
  if (existsSync('/dev/zero')) {
    const startedAt = performance.now();
    const rss = process.memoryUsage().rss;
    await assert.rejects(settlesWithin(readOnnxFile('/dev/zero'), 3000, 'reading /dev/zero'), (error) => assertRefused(error, '/dev/zero', 'BAD_MODEL', /a device, not a regular file/));
    assert.ok(performance.now() - startedAt < 1000, 'refused at once');
    assert.ok(process.memoryUsage().rss - rss < 64 * 1024 ** 2, 'without reading it');
  }
  await assert.rejects(readOnnxFile(modelsDir), (error) => assertRefused(error, modelsDir, 'BAD_MODEL', /a folder, not a regular file/));
});

test('hostile models: a file over the size cap is refused from its size, unread; the cap is 2 GiB', async () => {
  assert.equal(maxOnnxFileBytes, 2 * 1024 ** 3);
  // A sparse file: 2 GiB + 1 byte on paper, no disk used, zeros if anything read it.
  const huge = path.join(modelsDir, 'huge.onnx');
  writeFileSync(huge, '');
  truncateSync(huge, maxOnnxFileBytes + 1);
  const startedAt = performance.now();
  await assert.rejects(readOnnxFile(huge), (error) => assertRefused(error, huge, 'BAD_MODEL', /2\.0 GiB, over the 2\.0 GiB an ONNX model can hold/));
  assert.ok(performance.now() - startedAt < 1000, 'refused at once');
  const small = path.join(fixtures, 'resnet_tiny.onnx');
  await assert.rejects(readModelBytes(small, { maxBytes: 1000 }), (error) => assertRefused(error, small, 'BAD_MODEL', /over the/));
  assert.equal((await readModelBytes(small)).length, statSync(small).size);
});

test('hostile models: the committed fixtures hold no external data and still read', async () => {
  for (const name of readdirSync(fixtures).filter((file) => file.endsWith('.onnx'))) {
    const file = path.join(fixtures, name);
    assert.deepEqual(externalTensors(readFileSync(file)), [], name);
    const { bytes, graph } = await readOnnxFile(file);
    assert.equal(bytes.length, statSync(file).size);
    assert.ok(graph.nodes.length > 0);
  }
  const plain = write('plain.onnx', encodeModel(backbone()));
  const model = await OrtBackbone.open(plain, { device: 'cpu' });
  assert.deepEqual([...(await model.features(new Float32Array(64).fill(0.5), 1, 8, 8, 1))], [0.5]);
  await model.dispose();
});

test('hostile models: external data is refused wherever it sits (initializers, Constant values, If and Loop subgraphs, sparse initializers, functions), naming the file and the tensor; the canary is never read', async (t) => {
  const nestedLoop = {
    opType: 'Loop',
    name: 'inner-loop',
    input: ['', ''],
    output: ['loop_out'],
    attribute: [{ name: 'body', type: AttributeType.GRAPH, g: { name: 'body', node: [{ opType: 'Identity', input: ['deep'], output: ['body_out'] }], initializer: [external('deep', canary)], output: [floatInput('body_out', [1])] } }],
  };
  const sparse = protobuf.Writer.create()
    .uint32((15 << 3) | 2) // GraphProto.sparse_initializer
    .bytes(protobuf.Writer.create().uint32((1 << 3) | 2).bytes(externalTensorBytes('sparse-w', canary)).finish())
    .finish();
  const functionBytes = protobuf.Writer.create()
    .uint32((25 << 3) | 2) // ModelProto.functions
    .bytes(
      protobuf.Writer.create()
        .uint32((1 << 3) | 2).string('helper')
        .uint32((7 << 3) | 2) // FunctionProto.node
        .bytes(
          protobuf.Writer.create()
            .uint32((4 << 3) | 2).string('Constant')
            .uint32((3 << 3) | 2).string('fn-const')
            .uint32((5 << 3) | 2) // NodeProto.attribute
            .bytes(protobuf.Writer.create().uint32((1 << 3) | 2).string('value').uint32((20 << 3) | 0).int32(AttributeType.TENSOR).uint32((5 << 3) | 2).bytes(externalTensorBytes('fn-w', canary)).finish())
            .finish(),
        )
        .finish(),
    )
    .finish();
  const relativeOut = path.relative(modelsDir, canary);
  const cases: { name: string; bytes: Uint8Array; code: string; tensor: string; patterns: RegExp[] }[] = [
    { name: 'top-level.onnx', bytes: encodeModel(backbone({ scale: external('scale', relativeOut) })), code: 'BAD_MODEL', tensor: 'scale', patterns: [/initializer 'scale' points to data in '\.\.\/elsewhere\/canary\.bin', outside the model's folder/] },
    { name: 'in-folder.onnx', bytes: encodeModel(backbone({ scale: external('scale', 'weights.bin') })), code: 'UNSUPPORTED_MODEL', tensor: 'scale', patterns: [/initializer 'scale' in a separate file \('weights\.bin'\)/] },
    {
      name: 'constant.onnx',
      bytes: encodeModel(backbone({ scaleNodes: [{ opType: 'Constant', name: 'const', output: ['scale'], attribute: [{ name: 'value', type: AttributeType.TENSOR, t: external('c', canary) }] }] })),
      code: 'BAD_MODEL',
      tensor: 'c',
      patterns: [/the 'value' tensor 'c' of node 'const' \(Constant\) points to data in '.*canary\.bin', outside/],
    },
    // The probe of #26: a weight in an If subgraph with a plain relative location, which onnxruntime reads from the engine's working directory.
    { name: 'if-subgraph.onnx', bytes: encodeModel(ifModel(external('w', 'canary.bin'))), code: 'UNSUPPORTED_MODEL', tensor: 'w', patterns: [/initializer 'w' in the 'then_branch' graph of node 'branch' \(If\) in a separate file \('canary\.bin'\)/] },
    { name: 'if-subgraph-out.onnx', bytes: encodeModel(ifModel(external('w', relativeOut))), code: 'BAD_MODEL', tensor: 'w', patterns: [/initializer 'w' in the 'then_branch' graph of node 'branch' \(If\) points to data in '\.\.\/elsewhere\/canary\.bin', outside/] },
    {
      name: 'loop-in-if.onnx',
      bytes: encodeModel(ifModel(inline('w', [1]), [nestedLoop])),
      code: 'BAD_MODEL',
      tensor: 'deep',
      patterns: [/initializer 'deep' in the 'body' graph of node 'inner-loop' \(Loop\) in the 'else_branch' graph of node 'branch' \(If\) points to data in '.*canary\.bin', outside/],
    },
    { name: 'sparse.onnx', bytes: withGraphFields(encodeModel(backbone()), sparse), code: 'BAD_MODEL', tensor: 'sparse-w', patterns: [/the values of sparse initializer 'sparse-w' points to data/] },
    { name: 'function.onnx', bytes: new Uint8Array(Buffer.concat([encodeModel(backbone()), functionBytes])), code: 'BAD_MODEL', tensor: 'fn-w', patterns: [/the 'value' tensor 'fn-w' of node 'fn-const' \(Constant\) in function 'helper' points to data/] },
  ];
  const cwd = process.cwd();
  process.chdir(canaryDir);
  try {
    for (const { name, bytes, code, tensor, patterns } of cases) {
      const file = write(name, bytes);
      for (const open of [() => readOnnxFile(file), () => OrtBackbone.open(file, { device: 'cpu' }), async () => parseOnnx(readFileSync(file), file)]) {
        await assert.rejects(open(), (error) => {
          assertRefused(error, file, code, ...patterns);
          assert.equal((error as OnnxModelError).where.tensor, tensor, name);
          return true;
        });
      }
    }
    // The train job, run from the canary's folder as the engine would be: refused before a run folder exists.
    const runDir = path.join(scratch, 'run-if');
    await assert.rejects(trainFrozenBackbone({ imagesDir: scratch, runDir, options: { backbone: path.join(modelsDir, 'if-subgraph.onnx'), device: 'cpu' } }, silentContext()), (error) =>
      assertRefused(error, path.join(modelsDir, 'if-subgraph.onnx'), 'UNSUPPORTED_MODEL', /'then_branch' graph/),
    );
    assert.deepEqual(existsSync(runDir) ? readdirSync(runDir).filter((name) => !name.startsWith('.')) : [], [], 'nothing written to the run folder');
    assert.equal(canaryAtime(), canaryAtimeBefore, 'the canary was not read');

    // The control: onnxruntime itself, given the same bytes, does read the canary from the working directory
    // (features × 7), so the refusal above is what keeps it out.
    const session = await OrtModel.open(readFileSync(path.join(modelsDir, 'if-subgraph.onnx')), 'control', { device: 'cpu' });
    const { features } = await session.run({ images: { data: new Float32Array(64).fill(0.5), dims: [1, 1, 8, 8] } }, ['features']);
    await session.dispose();
    assert.deepEqual([...features.data], [3.5], 'onnxruntime read the canary (0.5 × 7)');
    // Where the file system keeps access times, the control's read moved the canary's: the check above could see a read.
    if (canaryAtime() === canaryAtimeBefore) t.diagnostic('this file system does not update access times: the canary check rests on the control');
  } finally {
    process.chdir(cwd);
  }
});

test('hostile models: declared dims of 1e10 or below zero give a clear error naming the file and the tensor, before any allocation', async () => {
  const cases: [string, TensorMessage, RegExp][] = [
    ['dims-1e10-no-data.onnx', { name: 'scale', dims: [1e10], dataType: DataType.FLOAT }, /initializer 'scale' has 0 values, but its shape \[10000000000\] needs 10000000000/],
    ['dims-1e10-float-data.onnx', { name: 'scale', dims: [1e5, 1e5], dataType: DataType.FLOAT, floatData: [1] }, /initializer 'scale' has 1 values, but its shape \[100000, 100000\] needs 10000000000/],
    ['dims-1e10-raw.onnx', { name: 'scale', dims: [1e10], dataType: DataType.FLOAT, rawData: new Uint8Array(4) }, /initializer 'scale' has 4 bytes of data, but its shape \[10000000000\] needs 40000000000/],
    ['dims-1e10-half.onnx', { name: 'scale', dims: [1e10], dataType: DataType.FLOAT16 }, /initializer 'scale' has 0 values/],
    ['dims-1e10-int64.onnx', { name: 'scale', dims: [1e10], dataType: DataType.INT64 }, /initializer 'scale' has 0 values/],
    ['dims-huge-product.onnx', { name: 'scale', dims: [2 ** 40, 2 ** 40], dataType: DataType.DOUBLE }, /initializer 'scale' has 0 values/],
    ['dims-negative.onnx', { name: 'scale', dims: [-1], dataType: DataType.FLOAT, floatData: [1] }, /initializer 'scale' has an invalid shape \[-1\]/],
  ];
  for (const [name, tensor, pattern] of cases) {
    const file = write(name, encodeModel(backbone({ scale: tensor })));
    for (const open of [() => readOnnxFile(file), () => OrtBackbone.open(file, { device: 'cpu' })]) {
      await assert.rejects(open(), (error) => {
        assertRefused(error, file, 'BAD_MODEL', pattern);
        assert.equal((error as OnnxModelError).where.tensor, 'scale');
        return true;
      });
    }
  }
  // A Constant node's tensor is checked the same way.
  const constant = write('dims-1e10-constant.onnx', encodeModel(backbone({ scaleNodes: [{ opType: 'Constant', name: 'const', output: ['scale'], attribute: [{ name: 'value', type: AttributeType.TENSOR, t: { name: 'big', dims: [1e10], dataType: DataType.FLOAT } }] }] })));
  await assert.rejects(readOnnxFile(constant), (error) => assertRefused(error, constant, 'BAD_MODEL', /the 'value' tensor of node 'const' \(Constant\) has 0 values, but its shape \[10000000000\]/));
});

test("hostile models: an absurd fixed input size is refused as the model's, naming the file and its input, not as a setting", async () => {
  for (const dims of [[1, 1, 100000, 100000], [1, 1, 8, 100000], [1, 1, 0, 0], [1, 1, 4, 4]]) {
    const file = write(`input-${dims[2]}x${dims[3]}.onnx`, encodeModel(backbone({ inputDims: dims })));
    const { graph } = await readOnnxFile(file);
    const pattern = new RegExp(`fixes its input 'images' at ${dims[2]}×${dims[3]} px .*from 8 to 512 px`);
    assert.throws(() => resolveBackboneInput(graph), (error) => assertRefused(error, file, 'UNSUPPORTED_MODEL', pattern));
    await assert.rejects(OrtBackbone.open(file, { device: 'cpu' }), (error) => assertRefused(error, file, 'UNSUPPORTED_MODEL', pattern));
  }
  const file = path.join(modelsDir, 'input-100000x100000.onnx');
  const runDir = path.join(scratch, 'run-huge-input');
  await assert.rejects(trainFrozenBackbone({ imagesDir: scratch, runDir, options: { backbone: file, device: 'cpu' } }, silentContext()), (error) =>
    assertRefused(error, file, 'UNSUPPORTED_MODEL', /fixes its input 'images' at 100000×100000 px/),
  );
  assert.deepEqual(existsSync(runDir) ? readdirSync(runDir).filter((name) => !name.startsWith('.')) : [], [], 'nothing written to the run folder');
  // A size in range still works.
  const fine = write('input-16.onnx', encodeModel(backbone({ inputDims: ['N', 1, 16, 16] })));
  assert.deepEqual([resolveBackboneInput((await readOnnxFile(fine)).graph).heightPx, resolveBackboneInput((await readOnnxFile(fine)).graph).widthPx], [16, 16]);
});
