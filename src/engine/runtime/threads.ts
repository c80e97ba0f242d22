// How many CPU threads onnxruntime's CPU kernels use: every core the process may use, or CLUSTER_LENS_THREADS.
import os from 'node:os';

export function cpuThreadCount(): number {
  const override = Number(process.env.CLUSTER_LENS_THREADS);
  if (Number.isInteger(override) && override >= 1) return override;
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}
