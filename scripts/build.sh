#!/usr/bin/env bash
# Builds the page for release (dist/): `trunk build --release` with wasm-opt
# from npm's binaryen (installed by scripts/setup.sh), then checks the
# WebAssembly sizes against their budget (scripts/size_budget.sh).
#   scripts/build.sh [trunk build arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.tools/binaryen/node_modules/.bin:$HOME/.cargo/bin:$PATH"
trunk build --release "$@"
bash scripts/size_budget.sh dist
