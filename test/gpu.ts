// GPU tests run on whatever Vulkan adapter the machine has: in CI, Mesa's lavapipe (software Vulkan, the same
// WGSL kernels as a real GPU, slowly). Outside CI a machine without any adapter skips them; in CI they must run.
import { spawnSync } from 'node:child_process';

function findAdapter(): string | undefined {
  let dawn: string;
  try {
    dawn = require.resolve('webgpu');
  } catch {
    return undefined;
  }
  const script = `require(${JSON.stringify(dawn)}).create([]).requestAdapter().then((a) => { process.stdout.write(a ? String(a.info.description || a.info.device || 'adapter') : ''); process.exit(0); }, () => process.exit(0));`;
  const probe = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  return probe.stdout?.trim() || undefined;
}

export const gpuAdapter = findAdapter();

export const skipWithoutGpu =
  gpuAdapter === undefined && !process.env.CI
    ? 'no Vulkan adapter (for software Vulkan: apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1, as .ci/run does)'
    : false;

// lavapipe warns when XDG_RUNTIME_DIR is unset; any writable folder silences it.
process.env.XDG_RUNTIME_DIR ??= require('node:os').tmpdir();
