#!/usr/bin/env bash
# Runs every test of rankscope on a fresh machine (installs what is missing):
#   0. cargo fmt --check of the workspace, clippy -D warnings on every crate (native and wasm32)
#   1. native: cargo test of the core and the CLI (fixtures in ../shared/fixtures), the GPU
#      kernels' parity tests on lavapipe, then a fuzz smoke run of every parser of
#      untrusted input (scripts/fuzz.sh)
#   2. wasm:   the core and the page's browser code in headless Chromium
#   3. build:  trunk build --release → dist/ (wasm-opt on), the wasm size budget
#   4. e2e:    the built page in Chromium: drop files and folders, read the inventory
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh --browser

if [[ ! -d ../shared/fixtures ]]; then
  echo "tests need ../shared/fixtures beside the checkout" >&2
  exit 1
fi

step() { echo; echo "=== $* ==="; }

# A test run builds each crate once: incremental caches would only take disk (GBs here),
# and a full disk shows up as a linker's bus error rather than as "no space left".
export CARGO_INCREMENTAL=0
# Free disk at the start and the build's own footprint at the end, so a CI log says which.
df -h . | tail -1 | awk '{print "disk: " $4 " free of " $2 " at the start"}'
trap 'du -sh target fuzz/target 2>/dev/null | sed "s/^/disk used by the build: /"' EXIT

step "formatting (rustfmt's default style) and lints (workspace [lints] + clippy, warnings denied)"
cargo fmt --all --check
cargo clippy --locked -p rankscope-core -p rankscope-cli -p rankscope-gpu --all-targets -- -D warnings
# The page and the GPU crate's browser half only build for wasm32.
cargo clippy --locked -p rankscope-app -p rankscope-gpu --target wasm32-unknown-unknown --all-targets -- -D warnings

step "native tests"
cargo test --locked -p rankscope-core -p rankscope-cli

step "GPU kernels against the CPU (lavapipe where no GPU is; fails without an adapter)"
cargo test --locked -p rankscope-gpu

step "fuzz smoke (20 s per target)"
bash scripts/fuzz.sh 20

step "wasm tests in headless Chromium"
export CHROMEDRIVER=/usr/bin/chromedriver
export WASM_BINDGEN_TEST_TIMEOUT=120
cargo test --locked -p rankscope-core --target wasm32-unknown-unknown --test web
cargo test --locked -p rankscope-app --target wasm32-unknown-unknown --test browser
# WebGPU on SwiftShader (flags in crates/gpu/webdriver.json).
cargo test --locked -p rankscope-gpu --target wasm32-unknown-unknown --test web

step "trunk build --release (wasm-opt from npm binaryen), then the wasm size budget"
bash scripts/build.sh

step "end-to-end in Chromium"
(cd tests/e2e && node --test --test-concurrency=1 ./*.test.mjs)
