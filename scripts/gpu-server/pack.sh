#!/usr/bin/env bash
# Packs what the engine needs to run on a bare Linux x64 GPU server (no desktop, no node, no network) into one
# archive under 60 MiB: a node binary, dist/, the native modules (onnxruntime-node with its WebGPU provider, sharp,
# Dawn for naming the adapter), Debian's Vulkan loader (libvulkan1), and Fashion-MNIST's test split for the bench.
#   scripts/gpu-server/pack.sh [out.tar.xz]        (default: cluster-lens-gpu-server.tar.xz)
# Then on the server:  tar xJf cluster-lens-gpu-server.tar.xz && cluster-lens-gpu-server/run.sh [bench flags]
# The server needs only the GPU driver (its Vulkan ICD). Build here first: npm ci && npm run build.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$(realpath -m "${1:-cluster-lens-gpu-server.tar.xz}")"
[ -f dist/engine.js ] || { echo "dist/ is missing: run npm ci && npm run build first" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "packs the linux-x64 binaries: run it on an x86_64 machine" >&2; exit 1; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/cluster-lens-gpu-server"
mkdir -p "$root/lib" "$root/data/fashion-mnist" "$root/node_modules"

cp "$(command -v node)" "$root/node"
mkdir -p "$root/dist"
cp dist/engine.js dist/cli.js "$root/dist/"
cp package.json "$root/"

# The runtime packages the bundles leave external, and everything they require, for linux-x64 only.
node -e '
  const fs = require("fs"), path = require("path");
  const seen = new Set(), queue = ["sharp", "onnxruntime-node", "webgpu"];
  while (queue.length) {
    const name = queue.shift();
    if (seen.has(name) || !fs.existsSync(path.join("node_modules", name, "package.json"))) continue;
    seen.add(name);
    const manifest = JSON.parse(fs.readFileSync(path.join("node_modules", name, "package.json"), "utf8"));
    queue.push(...Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies }));
  }
  console.log([...seen].join("\n"));' > "$stage/packages"
while read -r package; do
  mkdir -p "$root/node_modules/$(dirname "$package")"
  cp -r "node_modules/$package" "$root/node_modules/$package"
done < "$stage/packages"
# Keep one platform's binaries: onnxruntime-node and Dawn ship every platform's.
find "$root/node_modules/onnxruntime-node/bin/napi-v6" -mindepth 2 -maxdepth 2 ! -path '*/linux/x64' -exec rm -rf {} +
find "$root/node_modules/onnxruntime-node/bin/napi-v6" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +
find "$root/node_modules/webgpu/dist" -mindepth 1 -maxdepth 1 -type d ! -name linux-x64 -exec rm -rf {} + 2>/dev/null || true
rm -rf "$root/node_modules/@img/"*-linuxmusl-* "$root/node_modules/sharp/src" 2>/dev/null || true

# Debian's Vulkan loader, from the package cache or the mirror.
(cd "$stage" && apt-get download libvulkan1 >/dev/null 2>&1) || { echo "apt-get download libvulkan1 failed (run apt-get update once)" >&2; exit 1; }
dpkg -x "$stage"/libvulkan1_*.deb "$stage/vulkan"
cp -a "$stage"/vulkan/usr/lib/x86_64-linux-gnu/libvulkan.so.1* "$root/lib/"

idx=/usr/share/datasets/fashion-mnist
if [ -f "$idx/t10k-images-idx3-ubyte.gz" ]; then
  cp "$idx"/t10k-*-ubyte.gz "$root/data/fashion-mnist/"
else
  echo "note: Fashion-MNIST is not installed here (apt-get install dataset-fashion-mnist); the bench on the server then needs --idx-dir" >&2
fi
cp scripts/gpu-server/run.sh "$root/run.sh"
chmod +x "$root/run.sh" "$root/node"

tar -C "$stage" -cf - cluster-lens-gpu-server | xz -T0 -9 > "$out"
size=$(stat -c %s "$out")
echo "wrote $out ($((size / 1024 / 1024)) MiB)"
[ "$size" -le $((60 * 1024 * 1024)) ] || { echo "the archive is over 60 MiB" >&2; exit 1; }
