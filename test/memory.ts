// What a job leaves behind once it is over: the heap and the buffers outside it (typed arrays, onnxruntime's
// tensors) after a full garbage collection, so that tests can check memory stays flat over repeated calls.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose_gc');
const collect = runInNewContext('gc') as () => void;

/** Bytes held after a full collection: V8's heap plus ArrayBuffers. */
export function settledBytes(): number {
  collect();
  collect();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}
