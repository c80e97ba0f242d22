#!/usr/bin/env bash
# Opens the extension in code-server (VS Code in the browser) on the shipped sample images, for people
# without desktop VS Code: npm run code-server, then browse to http://127.0.0.1:${PORT:-8080}/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/install-code-server.sh
node esbuild.mjs >/dev/null
session=.e2e/session
mkdir -p "$session/user-data/User" "$session/extensions"
version=$(node -p "require('./package.json').version")
ln -sfn "$root" "$session/extensions/cluster-lens.cluster-lens-$version"
[ -f "$session/user-data/User/settings.json" ] || cat > "$session/user-data/User/settings.json" <<'JSON'
{ "workbench.startupEditor": "none", "clusterLens.imageSizePx": 28, "clusterLens.epochs": 5, "clusterLens.minutes": 0 }
JSON
echo "Cluster Lens in code-server: http://127.0.0.1:${PORT:-8080}/?folder=$root/sample/fashion-mnist"
exec .e2e/code-server/node_modules/.bin/code-server --auth none --bind-addr "127.0.0.1:${PORT:-8080}" --disable-telemetry --disable-update-check \
  --user-data-dir "$session/user-data" --extensions-dir "$session/extensions" "$root/sample/fashion-mnist"
