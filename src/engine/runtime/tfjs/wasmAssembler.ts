// A small WebAssembly assembler: enough to write the few SIMD loops we add to the wasm backend (see
// fusedBatchNorm.ts) without a compiler toolchain. Functions take i32 arguments (pointers and counts) and
// return nothing; the module imports its memory, so it works on the tensors of the backend it joins.

type Byte = number;

const valueTypes = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b } as const;
export type ValueType = keyof typeof valueTypes;

function unsignedLeb(value: number): Byte[] {
  const bytes: Byte[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

function signedLeb(value: number): Byte[] {
  const bytes: Byte[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

function name(text: string): Byte[] {
  const bytes = [...Buffer.from(text, 'utf8')];
  return [...unsignedLeb(bytes.length), ...bytes];
}

function vector(items: Byte[][]): Byte[] {
  return [...unsignedLeb(items.length), ...items.flat()];
}

function section(id: number, content: Byte[]): Byte[] {
  return [id, ...unsignedLeb(content.length), ...content];
}

/** The instructions our kernels use; `simd` ones carry the 0xfd prefix. */
const plain = {
  block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, br_if: 0x0d,
  'local.get': 0x20, 'local.set': 0x21, 'local.tee': 0x22,
  'f32.load': 0x2a, 'f64.load': 0x2b, 'f32.store': 0x38, 'f64.store': 0x39,
  'i32.const': 0x41, 'i32.eqz': 0x45, 'i32.lt_u': 0x49, 'i32.gt_u': 0x4b, 'i32.ge_u': 0x4f,
  'i32.add': 0x6a, 'i32.sub': 0x6b, 'i32.mul': 0x6c, 'i32.and': 0x71, 'i32.shl': 0x74, select: 0x1b,
  'f64.add': 0xa0, 'f64.promote_f32': 0xbb,
} as const;
const simd = {
  'v128.load': 0x00, 'v128.store': 0x0b, 'v128.const': 0x0c, 'i8x16.shuffle': 0x0d, 'f32x4.splat': 0x13, 'f32x4.extract_lane': 0x1f,
  'f32x4.gt': 0x44, 'v128.and': 0x4e, 'f32x4.add': 0xe4, 'f32x4.sub': 0xe5, 'f32x4.mul': 0xe6, 'f32x4.max': 0xe9,
} as const;
export type Instruction = keyof typeof plain | keyof typeof simd;

/** Memory accesses: the natural alignment of each, as a power of two. */
const alignment: Partial<Record<Instruction, number>> = {
  'f32.load': 2, 'f32.store': 2, 'f64.load': 3, 'f64.store': 3, 'v128.load': 4, 'v128.store': 4,
};

/** One function's body, written as a sequence of instructions with their immediates. */
export class FunctionBuilder {
  private readonly code: Byte[] = [];
  private readonly localTypes: ValueType[] = [];

  constructor(readonly parameterCount: number) {}

  /** Declares a local and returns its index (parameters come first). */
  local(type: ValueType): number {
    this.localTypes.push(type);
    return this.parameterCount + this.localTypes.length - 1;
  }

  /**
   * Emits one instruction. Immediates: a local index, an i32 constant, a lane, a byte offset for memory
   * accesses (alignment is implied), the four float lanes an i8x16.shuffle picks (0-3 from the first
   * operand, 4-7 from the second), nothing for block/loop/if (they take no result).
   */
  emit(instruction: Instruction, immediate?: number | number[]): this {
    if (instruction === 'i8x16.shuffle') {
      const lanes = immediate as number[];
      this.code.push(0xfd, simd[instruction], ...lanes.flatMap((lane) => [4 * lane, 4 * lane + 1, 4 * lane + 2, 4 * lane + 3]));
      return this;
    }
    if (Array.isArray(immediate)) throw new Error(`${instruction} takes one immediate`);
    if (instruction in simd) {
      this.code.push(0xfd, ...unsignedLeb(simd[instruction as keyof typeof simd]));
    } else {
      this.code.push(plain[instruction as keyof typeof plain]);
    }
    if (instruction === 'block' || instruction === 'loop' || instruction === 'if') this.code.push(0x40);
    else if (instruction === 'i32.const') this.code.push(...signedLeb(immediate ?? 0));
    else if (instruction === 'v128.const') this.code.push(...new Array<number>(16).fill(0)); // only zero is needed
    else if (instruction === 'f32x4.extract_lane') this.code.push(immediate ?? 0);
    else if (alignment[instruction] !== undefined) this.code.push(alignment[instruction]!, ...unsignedLeb(immediate ?? 0));
    else if (immediate !== undefined) this.code.push(...unsignedLeb(immediate));
    return this;
  }

  /** Shorthand for a run of instructions: strings, or [instruction, immediate] pairs. */
  emitAll(...instructions: (Instruction | [Instruction, number] | [Instruction, number[]])[]): this {
    for (const item of instructions) {
      if (typeof item === 'string') this.emit(item);
      else this.emit(item[0], item[1]);
    }
    return this;
  }

  encode(): Byte[] {
    // Locals are declared as runs of one type.
    const runs: Byte[][] = [];
    for (let index = 0; index < this.localTypes.length; ) {
      let end = index;
      while (end < this.localTypes.length && this.localTypes[end] === this.localTypes[index]) end++;
      runs.push([...unsignedLeb(end - index), valueTypes[this.localTypes[index]]]);
      index = end;
    }
    const body = [...vector(runs), ...this.code, plain.end];
    return [...unsignedLeb(body.length), ...body];
  }
}

export interface ModuleFunction {
  name: string;
  builder: FunctionBuilder;
}

/**
 * A module of exported `(i32 …) -> ()` functions over an imported memory `env.memory`; `shared` must match the
 * memory it will be given (the threaded wasm build's memory is shared, with at most 65536 pages).
 */
export function assembleModule(functions: ModuleFunction[], shared: boolean): Uint8Array<ArrayBuffer> {
  const arities = [...new Set(functions.map((f) => f.builder.parameterCount))];
  const types = arities.map((count) => [0x60, ...vector(new Array<Byte[]>(count).fill([valueTypes.i32])), 0x00]);
  const limits = shared ? [0x03, ...unsignedLeb(1), ...unsignedLeb(65536)] : [0x00, ...unsignedLeb(1)];
  const memoryImport = [...name('env'), ...name('memory'), 0x02, ...limits];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector(types)),
    ...section(2, vector([memoryImport])),
    ...section(3, vector(functions.map((f) => unsignedLeb(arities.indexOf(f.builder.parameterCount))))),
    ...section(7, vector(functions.map((f, index) => [...name(f.name), 0x00, ...unsignedLeb(index)]))),
    ...section(10, vector(functions.map((f) => f.builder.encode()))),
  ];
  return new Uint8Array(bytes);
}
