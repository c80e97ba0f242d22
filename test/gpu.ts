// GPU tests run on whatever Vulkan adapter the machine has: in CI, Mesa's lavapipe (software Vulkan, the same
// WGSL kernels as a real GPU, slowly). Outside CI a machine without any adapter skips them; in CI they fail.
import { requirements, skipUnless, vulkanAdapter } from './requirements';

export const gpuAdapter = vulkanAdapter();

export const skipWithoutGpu = skipUnless(requirements.vulkanAdapter);

// lavapipe warns when XDG_RUNTIME_DIR is unset; any writable folder silences it.
process.env.XDG_RUNTIME_DIR ??= require('node:os').tmpdir();
