#!/usr/bin/env bash
# Fuzzes every parser of untrusted input (the cargo-fuzz crate in fuzz/):
#   scripts/fuzz.sh [SECONDS] [TARGET...]   # default: 20 s for each target
# Installs nightly and cargo-fuzz when missing, builds the targets once, runs
# each for SECONDS (libFuzzer -max_total_time) and fails if any target crashes,
# panics, hangs (> 10 s on one input) or runs out of memory. Crashing inputs are
# left in fuzz/artifacts/TARGET/; reproduce one with
#   cargo +nightly fuzz run -s none -a TARGET fuzz/artifacts/TARGET/crash-…
# Seeds: fuzz/seeds/TARGET (small, committed) plus prefixes of the small files
# in ../shared/fixtures (copied at run time into fuzz/corpus/fixtures/TARGET).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

SECONDS_PER_TARGET=${1:-20}
shift || true
ALL_TARGETS=(share_link share_link_json safetensors tokens logs inspect pickle pytorch zip session fragment)
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL_TARGETS[@]}")
# The same flags for build and run (else `run` rebuilds): no sanitizer (the
# parsers are safe Rust; a panic is what we look for) and debug assertions on,
# so integer overflow panics instead of wrapping.
FUZZ_FLAGS=(-s none -a)

log() { echo "[fuzz] $*"; }

if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

log "building the fuzz targets"
build_start=$(date +%s)
if ! cargo +nightly fuzz build "${FUZZ_FLAGS[@]}" >fuzz/build.log 2>&1; then
  cat fuzz/build.log >&2
  exit 1
fi
log "build: $(( $(date +%s) - build_start )) s"

# Seeds from the shared fixtures: the first MAXSEED bytes of small files, with
# the selector byte the dispatching targets expect (see fuzz/fuzz_targets/*.rs).
FIX=../shared/fixtures
MAXSEED=32768
seed() { # seed TARGET SELECTOR(octal escape or "") FILE
  local dir="fuzz/corpus/fixtures/$1" src="$FIX/$3"
  [[ -f "$src" ]] || return 0
  mkdir -p "$dir"
  { printf "$2"; head -c "$MAXSEED" "$src"; } > "$dir/$(echo "$3" | tr '/' '_')"
}
if [[ -d "$FIX" ]]; then
  rm -rf fuzz/corpus/fixtures
  for f in eval_tokens.safetensors heldout_tokens_simple.safetensors heldout_tokens_complex.safetensors; do
    seed safetensors "" "$f"
    seed tokens '\000' "$f"
    seed inspect '\002' "$f"
  done
  seed safetensors "" runs/A1/ckpt_tokens_0.safetensors   # a prefix: header + first tensors
  seed inspect '\001' runs/A1/ckpt_tokens_0.safetensors
  seed logs '\000' runs/A1/metrics.jsonl                  # parse_as(Jsonl)
  seed logs '\010' runs/B1/metrics.jsonl                  # detect + parse as metrics.jsonl
  seed logs '\003' runs/A1/results.json                   # parse_as(StudyResults)
  seed logs '\012' logs/user-study/NoQK_results.json      # detect + parse as results.json
  seed logs '\006' logs/modded-nanogpt/muonh_seed1.log    # parse_as(TextKv)
  seed logs '\015' logs/modded-nanogpt/adamh_seed1.log    # detect + parse as train.log
  seed inspect '\005' runs/A1/metrics.jsonl
  seed inspect '\006' runs/A1/results.json
  seed inspect '\010' logs/modded-nanogpt/muonh_seed1.log
  seed inspect '\011' stories260K/config.json
fi

failed=()
for t in "${TARGETS[@]}"; do
  corpus=("fuzz/corpus/$t" "fuzz/seeds/$t")
  [[ -d "fuzz/corpus/fixtures/$t" ]] && corpus+=("fuzz/corpus/fixtures/$t")
  mkdir -p "fuzz/corpus/$t"
  logfile="fuzz/artifacts/$t.log"
  mkdir -p fuzz/artifacts
  start=$(date +%s)
  if cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$t" "${corpus[@]}" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$logfile" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t")
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logfile" | grep -o '[0-9]*$' | tail -1 || true)
  secs=$(( $(date +%s) - start ))
  log "$t: $status, ${runs:-?} execs in ${secs} s ($(( ${runs:-0} / (secs > 0 ? secs : 1) )) exec/s)"
  if [[ $status == FAILED ]]; then
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|timeout' "$logfile" | head -20 >&2 || true
    log "full log: $logfile"
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  log "crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
log "all ${#TARGETS[@]} targets ran ${SECONDS_PER_TARGET} s without a crash"
