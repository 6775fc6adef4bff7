#!/usr/bin/env bash
# Model runs: `predict`'s p50 and p99, one call at a time, on the seed's random forest and on a
# small Gemm/Relu network (tests/fixtures/inference), with 1 row and with 100 rows; then its
# rate and latency at 16 connections (the forest, one row). The server runs on its embedded
# defaults with the rate limits lifted and MODELHUB_INFERENCE_CONCURRENCY at its default
# (half the cores), so the figures are what one replica gives while leaving cores to the API.
#
#   bash benches/inference.sh      # benches/run.sh runs this
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${PORT:-18100}
WORK=$(mktemp -d /tmp/modelhub-inference.XXXXXX)
BASE="http://127.0.0.1:$PORT"

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
source benches/lib.sh
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/data"
start_server

gql() { curl -sf "$BASE/graphql" -H 'content-type: application/json' ${TOKEN:+-H "authorization: Bearer $TOKEN"} -d "$1"; }
TOKEN=$(gql '{"query":"mutation { register(input: {username: \"runner\", email: \"runner@example.com\", password: \"correct horse battery staple\"}) { token } }"}' | json 'd["data"]["register"]["token"]')

echo "machine: $(nproc) cores; $(date -u +%FT%TZ)"
WORK="$WORK" python3 benches/predict.py "$BASE" "$TOKEN" 300
MODELHUB_BENCH_TOKEN="$TOKEN" MODELHUB_BENCH_BODY_FILE="$WORK/predict.json" \
  wrk -t2 -c16 -d10s -s benches/predict.lua "$BASE/graphql" | grep '^predict' | sed 's/^/16 connections, forest, 1 row: /'
echo "server RSS $(( $(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status") / 1024 )) MiB"
