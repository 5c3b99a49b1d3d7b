#!/usr/bin/env bash
# Installs everything rankscope needs on a fresh machine; every step is a no-op
# when its tool is already present. Used by `scripts/serve.sh`, `scripts/test.sh`
# and `.ci/run`.
#   scripts/setup.sh            # build tools (wasm target, trunk, wasm-bindgen-cli, wasm-opt)
#   scripts/setup.sh --browser  # + Chromium, chromedriver, playwright-core and lavapipe for tests
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
# wasm-opt for `trunk build --release`: binaryen from npm (Debian's binaryen 108
# breaks the page). Trunk.toml asks for exactly this version, and the scripts
# that run Trunk put BINARYEN_BIN first on PATH (scripts/build.sh, serve.sh).
BINARYEN_VERSION=132.0.0
BINARYEN_BIN=.tools/binaryen/node_modules/.bin
# wasm-bindgen-cli must equal the wasm-bindgen library version in Cargo.lock.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock 2>/dev/null || true)
WASM_BINDGEN_VERSION=${WASM_BINDGEN_VERSION:-0.2.130}
export PATH="$HOME/.cargo/bin:$PATH"

log() { echo "[setup] $*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! trunk --version 2>/dev/null | grep -q " $TRUNK_VERSION"; then
  log "installing trunk $TRUNK_VERSION (slow the first time)"
  cargo install --locked trunk --version "$TRUNK_VERSION"
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION"; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Not --locked: the crate's own lockfile does not build on this rustc.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if ! "$BINARYEN_BIN/wasm-opt" --version 2>/dev/null | grep -q "(version_${BINARYEN_VERSION%%.*})"; then
  if ! command -v npm >/dev/null; then
    log "installing node and npm (for binaryen's wasm-opt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm
  fi
  log "installing wasm-opt (npm binaryen@$BINARYEN_VERSION) in .tools/binaryen"
  npm install --prefix .tools/binaryen --no-save --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION"
fi

if [[ "${1:-}" == "--browser" ]]; then
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    log "installing chromium + chromedriver"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The first unpack has been seen to fail here: retry once.
    apt-get install -y -qq chromium chromium-driver || apt-get install -y -qq chromium chromium-driver
  fi
  # The GPU kernels' tests (crates/gpu) run on lavapipe, Mesa's software Vulkan, where no GPU is.
  if ! compgen -G "/usr/share/vulkan/icd.d/lvp_icd*.json" >/dev/null; then
    log "installing lavapipe (mesa-vulkan-drivers, libvulkan1)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq mesa-vulkan-drivers libvulkan1
  fi
  if [[ ! -d tests/e2e/node_modules/playwright-core || ! -d tests/e2e/node_modules/@axe-core/playwright ]]; then
    log "installing playwright-core and @axe-core/playwright (npm)"
    (cd tests/e2e && npm install --no-audit --no-fund --silent)
  fi
fi
log "ok"
