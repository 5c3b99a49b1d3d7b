#!/usr/bin/env bash
# Installs what is missing, builds the page and serves it on 127.0.0.1.
# PORT=9000 scripts/serve.sh to pick another port. The built page (dist/) is
# static: any static file server works, with no network.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
# wasm-opt from npm's binaryen (see scripts/setup.sh and Trunk.toml).
export PATH="$PWD/.tools/binaryen/node_modules/.bin:$PATH"
exec trunk serve --release --address 127.0.0.1 --port "${PORT:-8080}"
