#!/usr/bin/env bash
# Fuzzes the inspection readers for a bounded time each (default 60 s), with inputs up to
# 4 MiB and a time limit per input (MAX_LEN, INPUT_TIMEOUT):
#   bash fuzz/run.sh            # every target, 60 s each
#   SECONDS_EACH=300 bash fuzz/run.sh pickle
# Installs cargo-fuzz if missing. libFuzzer needs unstable compiler flags; RUSTC_BOOTSTRAP
# lets the stable toolchain accept them. A crash leaves its input in fuzz/artifacts/TARGET/:
# copy it to fuzz/regressions/ so that `cargo test -p modelhub-inspect` replays it forever.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${SECONDS_EACH:-60}
MAX_LEN=${MAX_LEN:-4194304}
INPUT_TIMEOUT=${INPUT_TIMEOUT:-20}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(pickle safetensors gguf inspect)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
mkdir -p corpus
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target"
  # Seed every corpus with the test fixtures and earlier regressions.
  cp ../tests/fixtures/*.{pkl,pth,joblib,onnx,h5} "corpus/$target/" 2>/dev/null || true
  find ../tests/fixtures/corpus -type f ! -name manifest.json -exec cp {} "corpus/$target/" \;
  cp regressions/* "corpus/$target/" 2>/dev/null || true
  echo "== fuzzing $target for ${SECONDS_EACH}s"
  cargo fuzz run --sanitizer none "$target" "corpus/$target" -- -max_total_time="$SECONDS_EACH" -max_len="$MAX_LEN" -timeout="$INPUT_TIMEOUT" -rss_limit_mb=2048 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|Done|==|SUMMARY|artifact_prefix|Test unit written)" || true
done
