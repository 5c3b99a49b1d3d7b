#!/usr/bin/env bash
# The forward + activation-spectra benchmark on every engine, in one table: native CPU,
# wasm CPU (Node, simd128) and WebGPU (wgpu's native backend; lavapipe where there is no GPU),
# on the full-size reference checkpoint, one sequence of t tokens (default 1024).
#   scripts/bench.sh [tokens]
# Not a test: it times things. The wasm run comes first and its result line goes to the
# native `bench` binary, which measures the other two and prints the table with ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS=${1:-1024}
export PATH="$HOME/.cargo/bin:$PATH"

# Build tools (wasm target, wasm-bindgen-test-runner) and lavapipe for the WebGPU row.
bash scripts/setup.sh --browser

WASM_OUT=$(mktemp)
TORCH_OUT=$(mktemp)
SYNTHETIC=$(mktemp --suffix .safetensors)
trap 'rm -f "$WASM_OUT" "$TORCH_OUT" "$SYNTHETIC"' EXIT
echo "[bench] wasm CPU, $TOKENS tokens (Node)…" >&2
RANKSCOPE_BENCH_TOKENS=$TOKENS cargo test --locked --release -p rankscope-core --target wasm32-unknown-unknown \
  --test web_bench -- --include-ignored --nocapture bench_forward_wasm 2>&1 | tee "$WASM_OUT" >&2
# PyTorch's rows when a Python with torch and safetensors is at hand ($RANKSCOPE_PYTHON, else
# python3): the same synthetic checkpoint written to a file, the same model in PyTorch.
PYTHON=${RANKSCOPE_PYTHON:-python3}
TORCH_ARGS=()
if "$PYTHON" -c "import torch, safetensors" 2>/dev/null; then
  echo "[bench] PyTorch CPU, $TOKENS tokens…" >&2
  cargo run --locked --release -p rankscope-core --example write_synthetic -- "$SYNTHETIC" >&2
  "$PYTHON" scripts/reference/bench_torch.py "$SYNTHETIC" "$TOKENS" | tee "$TORCH_OUT" >&2
  TORCH_ARGS=(--torch "$TORCH_OUT")
else
  echo "[bench] no torch in $PYTHON: no PyTorch row" >&2
fi
echo "[bench] native CPU and WebGPU…" >&2
cargo run --locked --release -p rankscope-gpu --bin bench -- --tokens "$TOKENS" --wasm "$WASM_OUT" "${TORCH_ARGS[@]}"
