// The one place the engine chooses where its heavy computation runs: onnxruntime's CUDA provider, its
// WebGPU provider (Dawn: Vulkan on Linux, D3D12 on Windows, Metal on macOS), or its CPU kernels.
// 'auto' takes a GPU only when it is real hardware; software adapters (llvmpipe, lavapipe, SwiftShader)
// emulate a GPU on the CPU, slower than the CPU kernels, so only an explicit 'gpu' uses them.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { DeviceInfo, DeviceKind, DevicePreference, RanOn } from '../../protocol/options';
import type { LogLevel } from '../../protocol/engine';
import { EngineError } from '../errors';
import { nativePackageFolder, packagedTarget, resolveNative } from '../nativeModules';
import { DataType, encodeModel } from '../onnx/schema';
import { loadOrt } from './ortModule';

export type DeviceLog = (level: LogLevel, message: string) => void;

export const devicePreferences: readonly DevicePreference[] = ['auto', 'gpu', 'cpu'];

/** What a GPU needs, said once for every message that has to say it. */
export const gpuAdvice =
  'The GPU needs its driver with Vulkan support and the Vulkan loader (Debian/Ubuntu: apt install libvulkan1); nothing else. Or use --device cpu (setting clusterLens.device: cpu).';

/** The GPU adapter as Dawn describes it. */
export interface AdapterDescription {
  name: string;
  vendor: string;
  architecture: string;
  description: string;
  /** llvmpipe, lavapipe, SwiftShader, a "fallback" adapter: a GPU emulated on the CPU. */
  software: boolean;
}

const softwarePattern = /llvmpipe|lavapipe|swiftshader|software|fallback|microsoft basic render/i;

/** Whether Dawn's adapter info describes a software rasteriser rather than hardware. */
export function isSoftwareAdapter(info: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean }): boolean {
  if (info.isFallbackAdapter === true) return true;
  return [info.vendor, info.architecture, info.device, info.description].some((text) => typeof text === 'string' && softwarePattern.test(text));
}

let chosen: { preference: DevicePreference; info: Promise<DeviceInfo> } | undefined;
let active: DeviceInfo = cpuDevice([]);

/** onnxruntime's execution providers for a device; the CPU provider takes any operator the GPU lacks. */
export function providersFor(device: DeviceKind): string[] {
  return device === 'cpu' ? ['cpu'] : [device, 'cpu'];
}

/** The device that new sessions open on: the last one chosen, else the CPU. */
export function currentDevice(): DeviceInfo {
  return active;
}

/** The preference when a request names none: the engine's environment (CLI --device, the VS Code setting), else auto. */
export function defaultDevicePreference(): DevicePreference {
  const fromEnvironment = process.env.CLUSTER_LENS_DEVICE?.trim().toLowerCase();
  if (!fromEnvironment) return 'auto';
  if (!devicePreferences.includes(fromEnvironment as DevicePreference)) {
    throw new EngineError('BAD_CONFIG', `CLUSTER_LENS_DEVICE is "${fromEnvironment}"; it must be one of ${devicePreferences.join(', ')}.`);
  }
  return fromEnvironment as DevicePreference;
}

/**
 * Chooses the device for `preference` (the environment's default when undefined) and makes it the one that
 * sessions open on. The answer is kept: asking again with the same preference starts nothing.
 */
export function useDevice(preference: DevicePreference | undefined, log?: DeviceLog): Promise<DeviceInfo> {
  const wanted = preference ?? defaultDevicePreference();
  if (!devicePreferences.includes(wanted)) {
    return Promise.reject(new EngineError('BAD_CONFIG', `Setting "device" is ${JSON.stringify(wanted)}; it must be one of ${devicePreferences.join(', ')}.`));
  }
  const fresh = chosen?.preference !== wanted;
  if (fresh) {
    const info = chooseDevice(wanted, log);
    chosen = { preference: wanted, info };
    // A failure is not kept, so a later call (after installing a driver, say) tries again.
    info.catch(() => {
      if (chosen?.info === info) chosen = undefined;
    });
  }
  return chosen!.info.then((info) => {
    if (fresh || info !== active) {
      log?.('info', `Device: ${describeDevice(info)}`);
      if (info.warning) log?.('warn', info.warning);
    }
    active = info;
    return info;
  });
}

/** The result fields that name the device (none when the work did not run on onnxruntime's device). */
export function ranOn(info: DeviceInfo | undefined): RanOn {
  if (!info) return { device: 'cpu' };
  return info.adapter ? { device: info.device, adapter: info.adapter } : { device: info.device };
}

/** The result fields for work that ran on `kind`: with the adapter's name when that is the chosen device. */
export function ranOnKind(kind: DeviceKind): RanOn {
  return kind === active.device ? ranOn(active) : { device: kind };
}

/** "webgpu (NVIDIA H200, Vulkan)"; "cpu"; with the rungs skipped on the way, for the log. */
export function describeDevice(info: DeviceInfo): string {
  const skipped = info.skipped.length > 0 ? `; skipped ${info.skipped.map((rung) => `${rung.device}: ${rung.reason}`).join('; ')}` : '';
  return `${info.label}${skipped}`;
}

async function chooseDevice(preference: DevicePreference, log?: DeviceLog): Promise<DeviceInfo> {
  if (preference === 'cpu') return cpuDevice([]);
  const skipped: DeviceInfo['skipped'] = [];
  for (const rung of [tryCuda, tryWebgpu]) {
    const outcome = await rung(preference).catch((error: unknown): RungOutcome => ({ skipped: { device: rung === tryCuda ? 'cuda' : 'webgpu', reason: (error as Error).message } }));
    if ('info' in outcome) return { ...outcome.info, skipped };
    skipped.push(outcome.skipped);
    log?.('debug', `Device ${outcome.skipped.device} skipped: ${outcome.skipped.reason}`);
  }
  if (preference === 'gpu') {
    throw new EngineError('BACKEND_UNAVAILABLE', `No GPU could be used (${skipped.map((rung) => `${rung.device}: ${rung.reason}`).join('; ')}). ${gpuAdvice}`);
  }
  return cpuDevice(skipped);
}

function cpuDevice(skipped: DeviceInfo['skipped']): DeviceInfo {
  return { device: 'cpu', label: 'cpu', skipped };
}

type RungOutcome = { info: Omit<DeviceInfo, 'skipped'> } | { skipped: { device: DeviceKind; reason: string } };

/** CUDA, where onnxruntime-node's CUDA provider files were installed (ONNXRUNTIME_NODE_INSTALL=cuda12); never downloaded. */
async function tryCuda(): Promise<RungOutcome> {
  const ort = loadOrt();
  const listed = ort.listSupportedBackends().find((backend) => backend.name === 'cuda');
  if (!listed) return { skipped: { device: 'cuda', reason: 'this onnxruntime build has no CUDA provider' } };
  const providerFile = path.join(ortBinaryFolder(), process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so');
  if (!listed.bundled && !existsSync(providerFile)) {
    const how = packagedTarget()
      ? 'a VSIX carries the CPU and WebGPU providers, and WebGPU runs NVIDIA GPUs too'
      : 'reinstall onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12, with CUDA 12 and cuDNN 9';
    return { skipped: { device: 'cuda', reason: `its provider files are not installed (${how})` } };
  }
  const failure = await runProbeGraph('cuda');
  if (failure) return { skipped: { device: 'cuda', reason: failure } };
  return { info: { device: 'cuda', label: 'cuda'} };
}

async function tryWebgpu(preference: DevicePreference): Promise<RungOutcome> {
  const ort = loadOrt();
  if (!ort.listSupportedBackends().some((backend) => backend.name === 'webgpu')) {
    return { skipped: { device: 'webgpu', reason: 'this onnxruntime build has no WebGPU provider' } };
  }
  let adapter: AdapterDescription | undefined;
  let unknownAdapter: string | undefined;
  try {
    adapter = await describeAdapter();
  } catch (error) {
    const reason = (error as Error).message;
    if (error instanceof NoAdapterError) return { skipped: { device: 'webgpu', reason } };
    unknownAdapter = reason;
  }
  if (adapter?.software && preference === 'auto') {
    return { skipped: { device: 'webgpu', reason: `the only adapter, ${adapter.name}, is a software renderer (slower than the CPU kernels); --device gpu uses it anyway` } };
  }
  if (!adapter && preference === 'auto') {
    return { skipped: { device: 'webgpu', reason: `cannot tell a hardware adapter from a software one (${unknownAdapter}); --device gpu uses whatever adapter there is` } };
  }
  const failure = await runProbeGraph('webgpu');
  if (failure) return { skipped: { device: 'webgpu', reason: failure } };
  const name = adapter ? adapter.name : 'unknown adapter';
  const api = process.platform === 'win32' ? 'D3D12' : process.platform === 'darwin' ? 'Metal' : 'Vulkan';
  return {
    info: {
      device: 'webgpu',
      adapter: name,
      software: adapter?.software,
      label: `webgpu (${name}, ${api}${adapter?.software ? ', software' : ''})`,
      warning: adapter?.software ? `The GPU adapter ${name} is a software renderer: it runs on the CPU, far slower than --device cpu. Use it for testing only.` : undefined,
    },
  };
}

class NoAdapterError extends Error {}

/**
 * Dawn's description of the adapter onnxruntime will get, read in a short-lived child process: a driver that
 * crashes while being probed takes the probe down, not the engine, and the engine's own Dawn (inside
 * onnxruntime) never shares a process with a second one.
 */
async function describeAdapter(): Promise<AdapterDescription> {
  let dawnPath: string;
  try {
    dawnPath = resolveNative('webgpu');
  } catch {
    throw new Error('the optional package webgpu, which names the adapter, is not installed');
  }
  const script = `
    const { create } = require(${JSON.stringify(dawnPath)});
    create([]).requestAdapter({ powerPreference: 'high-performance' }).then((adapter) => {
      const info = adapter ? adapter.info : undefined;
      process.stdout.write(JSON.stringify(adapter ? { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter } : null));
      process.exit(0);
    }, (error) => { process.stdout.write(JSON.stringify({ error: String(error && error.message || error) })); process.exit(0); });`;
  const output = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { timeout: 20_000, env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } }, (error, stdout) => {
      if (error && !stdout) reject(new Error(`the adapter probe failed (${String(error.message).split('\n')[0]})`));
      else resolve(stdout);
    });
  });
  let parsed: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean; error?: string } | null;
  try {
    parsed = JSON.parse(output) as typeof parsed;
  } catch {
    throw new Error(`the adapter probe answered ${JSON.stringify(output.slice(0, 200))}`);
  }
  if (parsed === null) throw new NoAdapterError('no GPU adapter found (no Vulkan driver, or no libvulkan1)');
  if (parsed.error) throw new NoAdapterError(`no GPU adapter: ${parsed.error.split('\n')[0]}`);
  const name = adapterName(parsed);
  return { name, vendor: parsed.vendor ?? '', architecture: parsed.architecture ?? '', description: parsed.description ?? '', software: isSoftwareAdapter(parsed) };
}

/** "NVIDIA H200"-like: the description where it names the device, else vendor and device. */
function adapterName(info: { vendor?: string; architecture?: string; device?: string; description?: string }): string {
  const description = info.description?.trim();
  if (description) return description.replace(/\s+\(LLVM [^)]*\)/, '').replace(/\s+0\.0\.1$/, '');
  return [info.vendor, info.device || info.architecture].filter(Boolean).join(' ') || 'unnamed adapter';
}

/** Runs a one-node graph on the provider; undefined when it worked, else why not. */
async function runProbeGraph(provider: 'cuda' | 'webgpu'): Promise<string | undefined> {
  const ort = loadOrt();
  const bytes = encodeModel({
    irVersion: 8,
    producerName: 'cluster-lens',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'device_probe',
      node: [{ opType: 'Relu', input: ['x'], output: ['y'], name: 'relu' }],
      input: [{ name: 'x', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: 4 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: 4 }] } } } }],
    },
  });
  let session: Awaited<ReturnType<typeof ort.InferenceSession.create>> | undefined;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: [provider] });
    const result = await session.run({ x: new ort.Tensor('float32', Float32Array.from([-1, 0, 2, -3]), [4]) });
    const values = Array.from(result.y.data as Float32Array);
    if (values.join(',') !== '0,0,2,0') return `a test graph gave wrong values (${values.join(', ')})`;
    return undefined;
  } catch (error) {
    const message = String((error as Error)?.message ?? error).split('\n')[0].trim();
    if (/libvulkan/.test(message)) return 'the Vulkan loader libvulkan.so.1 is missing (apt install libvulkan1)';
    return `onnxruntime could not start it: ${message}`;
  } finally {
    await session?.release();
  }
}

function ortBinaryFolder(): string {
  return path.join(nativePackageFolder('onnxruntime-node'), 'bin', 'napi-v6', process.platform, process.arch);
}
