#!/usr/bin/env bash
# Installs code-server 4.100.3 (VS Code 1.100.3 in the browser) into .e2e/code-server for the end-to-end test.
# Debian's ripgrep stands in for the binary that @vscode/ripgrep would download. Needs: the apt packages
# libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev ripgrep (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
target=.e2e/code-server
if [ -x "$target/node_modules/.bin/code-server" ]; then exit 0; fi
cache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-1.15.11"
mkdir -p "$cache" "$target"
tar czf "$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C /usr/bin rg
cd "$target"
[ -f package.json ] || echo '{"private":true}' > package.json
npm_config_yes=true npm install --no-audit --no-fund --unsafe-perm code-server@4.100.3
