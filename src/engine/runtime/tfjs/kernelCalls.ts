// Composite kernels call a backend's other kernels directly, below the engine: nothing they make
// is tracked by `tf.memory()` or recorded on the tape, so they must free their intermediates.

import * as tf from '@tensorflow/tfjs-core';

/** What tfjs passes to every kernel function. */
export interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs: tf.NamedAttrMap;
}

/**
 * Runs a backend's kernels directly and remembers every output, so that one call to `release`
 * frees all intermediates, on success and on error alike.
 */
export class KernelCalls {
  private readonly outputs: tf.TensorInfo[] = [];

  constructor(
    readonly backend: tf.KernelBackend,
    private readonly backendName: string,
  ) {}

  run(kernelName: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap = {}): tf.TensorInfo {
    const kernel = tf.getKernel(kernelName, this.backendName);
    if (kernel === undefined) {
      throw new Error(`Kernel '${kernelName}' not registered for backend '${this.backendName}'`);
    }
    const output = kernel.kernelFunc({ inputs, attrs, backend: this.backend }) as tf.TensorInfo;
    this.outputs.push(output);
    return output;
  }

  write(values: Float32Array, shape: number[]): tf.TensorInfo {
    const output: tf.TensorInfo = { dataId: this.backend.write(values, shape, 'float32'), shape, dtype: 'float32' };
    this.outputs.push(output);
    return output;
  }

  /** Takes charge of an output made outside `run`, so `release` frees it too. */
  adopt(output: tf.TensorInfo): tf.TensorInfo {
    this.outputs.push(output);
    return output;
  }

  reshape(x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  /** Crops `x` to `size` from `begin`, or returns it as it is when nothing needs cropping. */
  crop(x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
    const unchanged = begin.every((start) => start === 0) && size.every((length, axis) => length === x.shape[axis]);
    return unchanged ? x : this.run('Slice', { x }, { begin, size });
  }

  /**
   * Transpose with the axes that stay neighbours merged first: the wasm Transpose kernel is fast for
   * low ranks and small permutations and many times slower otherwise (measured 5 ms against 185 ms).
   */
  transpose(x: tf.TensorInfo, perm: number[]): tf.TensorInfo {
    const groups: number[][] = [];
    for (const axis of perm) {
      const last = groups[groups.length - 1];
      if (last !== undefined && last[last.length - 1] + 1 === axis) last.push(axis);
      else groups.push([axis]);
    }
    const inputOrder = [...groups].sort((a, b) => a[0] - b[0]);
    const mergedShape = inputOrder.map((group) => group.reduce((size, axis) => size * x.shape[axis], 1));
    const mergedPerm = groups.map((group) => inputOrder.indexOf(group));
    const merged = this.reshape(x, mergedShape);
    const transposed = mergedPerm.every((axis, index) => axis === index) ? merged : this.run('Transpose', { x: merged }, { perm: mergedPerm });
    return this.reshape(transposed, perm.map((axis) => x.shape[axis]));
  }

  /** Frees every output except `keep` (each output holds exactly one reference to its data). */
  release(keep?: tf.TensorInfo): void {
    for (const output of this.outputs) {
      if (output !== keep) this.backend.disposeData(output.dataId);
    }
    this.outputs.length = 0;
  }
}
