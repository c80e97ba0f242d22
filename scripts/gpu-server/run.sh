#!/usr/bin/env bash
# Runs the packed engine on a bare GPU server: `run.sh` alone runs `cluster-lens bench --device gpu`; any other
# arguments go to cluster-lens as they are (e.g. run.sh train images/ --out run --device gpu).
# Needs only the GPU driver. If no adapter is found, point the loader at the driver's ICD file, e.g.
#   VK_DRIVER_FILES=/usr/share/vulkan/icd.d/nvidia_icd.json ./run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
  done
fi
if [ $# -eq 0 ]; then
  set -- bench --device gpu --idx-dir "$here/data/fashion-mnist"
fi
exec "$here/node" "$here/dist/cli.js" "$@"
