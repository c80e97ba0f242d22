// The engine's native modules, each loaded on first use, so that the engine starts, and past runs stay browsable,
// when one of them cannot load (a VSIX built for another platform, a missing system library). A failure becomes one
// message that names the module, what it is for, this machine's platform, and what the user can do.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { EngineError } from './errors';

/** The native packages the bundles load at run time; each VSIX carries its platform's build of every one. */
export const nativeModules = {
  sharp: 'decodes and writes images',
  'onnxruntime-node': 'runs the model (training, indexing, explanations)',
  usearch: 'builds the HNSW neighbour index for runs of 50,000+ images; without it, queries use an exact scan',
  webgpu: 'names the GPU adapter, so that "auto" can tell a hardware GPU from a software one',
} as const;
export type NativeModule = keyof typeof nativeModules;

// Native packages sit beside the bundles (dist/node_modules in a VSIX) or in the checkout's node_modules: a require
// that esbuild leaves alone finds either.
const nativeRequire = createRequire(__filename);

/** The platform a packaged extension was built for (written by scripts/vsix/package.ts); undefined in a checkout. */
export function packagedTarget(): string | undefined {
  const file = path.join(__dirname, 'target.json');
  if (!existsSync(file)) return undefined;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { target?: string }).target;
  } catch {
    return undefined;
  }
}

/** What to do when `name` cannot load here: for a VSIX, the right VSIX (no npm commands); for a checkout, npm ci. */
export function nativeModuleAdvice(name: NativeModule): string {
  const here = `${process.platform}-${process.arch}`;
  const target = packagedTarget();
  const steps: string[] = [];
  if (target && target !== here) steps.push(`this Cluster Lens VSIX is built for ${target}, and this machine is ${here}: install cluster-lens-${here}.vsix instead`);
  else if (target) steps.push(`the VSIX for ${here} is damaged or incomplete: reinstall Cluster Lens`);
  else steps.push(`in a checkout, run npm ci on this machine (${here})`);
  if (here === 'darwin-x64') steps.push('onnxruntime publishes no build for Intel Macs: use Cluster Lens on a Linux machine through Remote-SSH or a Dev Container');
  if (name === 'webgpu' || name === 'onnxruntime-node') steps.push('for the GPU, install its driver with Vulkan support and the Vulkan loader (Linux: libvulkan1), or choose the CPU (--device cpu, setting clusterLens.device: cpu)');
  return steps.join('; ');
}

const loaded = new Map<NativeModule, unknown>();

/** Loads `name` once; a failure is an EngineError naming the module, its role, the platform and the fix. */
export function loadNative<T>(name: NativeModule): T {
  if (loaded.has(name)) return loaded.get(name) as T;
  let value: T;
  try {
    value = nativeRequire(name) as T;
  } catch (error) {
    throw nativeModuleError(name, error);
  }
  loaded.set(name, value);
  return value;
}

export function nativeModuleError(name: NativeModule, cause: unknown): EngineError {
  // The cause's first lines, without a package's own install advice (sharp's suggests npm commands).
  const reason = String((cause as Error)?.message ?? cause)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !/^(Possible solutions|- |See |npm )/.test(line))
    .slice(0, 2)
    .join(' ')
    .replace(/\.$/, '');
  return new EngineError(
    'NATIVE_MODULE_UNAVAILABLE',
    `The native module ${name} (it ${nativeModules[name]}) cannot load on ${process.platform}-${process.arch}: ${reason}. What to do: ${nativeModuleAdvice(name)}.`,
    String((cause as Error)?.stack ?? cause),
  );
}

/** sharp, loaded on first use (decoding, thumbnails and PNGs call this, not `import sharp`). */
export function loadSharp(): typeof import('sharp').default {
  // require('sharp') is the function itself (its CommonJS build), which the types call the default export.
  return loadNative<typeof import('sharp').default>('sharp');
}

/** Where a native package's folder is, for code that reads files beside it (onnxruntime's provider libraries). */
export function nativePackageFolder(name: NativeModule): string {
  return path.dirname(nativeRequire.resolve(`${name}/package.json`));
}

/** The path `require` would load for `name`, without loading it (the adapter probe loads Dawn in a child process). */
export function resolveNative(name: NativeModule): string {
  return nativeRequire.resolve(name);
}
