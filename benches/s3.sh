#!/usr/bin/env bash
# Files through S3 (the S3 test server: moto, in target/ci-moto as .ci/run makes it). One
# replica (SQLite) uploads a SIZE_GIB file (default 1), downloads it back through the hub and
# through a presigned redirect (printing the bytes the hub itself sent); then two replicas on
# PostgreSQL (MODELHUB_BENCH_POSTGRES_URL) and Redis behind nginx upload and download the same
# file through the balancer. Prints MB/s and whether the bytes match.
#
#   bash benches/s3.sh                       # 1 GiB (benches/run.sh runs this)
#   MODELHUB_S3_MAX_COPY_BYTES=1073741824 SIZE_GIB=2 bash benches/s3.sh   # a multipart copy
#   S3_ENDPOINT=http://127.0.0.1:9100 SIZE_GIB=6 bash benches/s3.sh      # another S3 server
#
# A file over MODELHUB_S3_MAX_COPY_BYTES is placed by a multipart copy of its parts. moto
# keeps a multipart upload's whole object in memory when completing it (a 6 GiB file took it
# past 20 GiB of memory): larger files need an S3 server that keeps objects on disk, named by
# S3_ENDPOINT (with a bucket `bench`, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, default
# test / test) instead of moto.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZE_GIB=${SIZE_GIB:-1}
PORT=${PORT:-18090}
S3_PORT=${S3_PORT:-19000}
WORK=$(mktemp -d /tmp/modelhub-s3.XXXXXX)
PG_ADMIN=${MODELHUB_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
REDIS=${MODELHUB_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
PG_DB="modelhub_s3_$$"
BASE="http://127.0.0.1:$PORT"

MOTO_VENV="$ROOT/target/ci-moto"
if [ -z "${S3_ENDPOINT:-}" ] && [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  python3 -m venv "$MOTO_VENV" && "$MOTO_VENV/bin/pip" install --quiet 'moto[server]==5.2.5'
fi
cargo build --release --quiet
source benches/lib.sh

MOTO_PID="" SERVER_PID="" SECOND_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$SECOND_PID" ] && kill "$SECOND_PID" 2>/dev/null || true
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  stop_balancer
  psql -q "$PG_ADMIN/postgres" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ -z "${S3_ENDPOINT:-}" ]; then
  # moto keeps objects over 16 MB in temporary files: keep them beside the test file.
  TMPDIR="$WORK" "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
  for _ in $(seq 100); do curl -sf -o /dev/null "$S3_ENDPOINT/" && break; sleep 0.1; done
  curl -sf -o /dev/null -X PUT "$S3_ENDPOINT/bench"
fi

mkdir -p "$WORK/data"
export AWS_ENDPOINT="$S3_ENDPOINT" AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" \
  AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}" AWS_REGION="${AWS_REGION:-us-east-1}" \
  AWS_ALLOW_HTTP=true MODELHUB_STORAGE_URL=s3://bench/large
start_server

gql() { curl -sf "$BASE/graphql" -H 'content-type: application/json' ${TOKEN:+-H "authorization: Bearer $TOKEN"} -d "$1"; }
gql '{"query":"mutation { register(input: {username: \"bench\", email: \"bench@example.com\", password: \"correct horse battery staple\"}) { token } }"}' >/dev/null
TOKEN=$(gql '{"query":"mutation { login(input: {username: \"bench\", password: \"correct horse battery staple\"}) { token } }"}' | json 'd["data"]["login"]["token"]')

# Random bytes starting with a zero byte: inert data to the inspection.
FILE="$WORK/large.bin"
{ printf '\0'; head -c $((SIZE_GIB * 1024 * 1024 * 1024 - 1)) /dev/urandom; } >"$FILE"
SHA=$(sha256sum "$FILE" | cut -d' ' -f1)
START=$(date +%s.%N)
UP=$(curl -s -o "$WORK/up.json" -w '%{speed_upload}' "$BASE/graphql" -H "authorization: Bearer $TOKEN" \
  -F operations="{\"query\":\"mutation(\$input: CreateModelInput!, \$file: Upload!) { createModel(input: \$input, file: \$file) { currentVersion { id sha256 } } }\",\"variables\":{\"file\":null,\"input\":{\"name\":\"large\",\"framework\":\"bench\",\"version\":\"1.0.0\",\"format\":\"OTHER\"}}}" \
  -F map='{"0":["variables.file"]}' -F "0=@$FILE")
UP_SECS=$(python3 -c "import time; print(f'{time.time() - $START:.1f}')")
VERSION=$(json 'd["data"]["createModel"]["currentVersion"]["id"]' <"$WORK/up.json")
STORED=$(json 'd["data"]["createModel"]["currentVersion"]["sha256"]' <"$WORK/up.json")
echo "${SIZE_GIB} GiB upload to S3: $(python3 -c "print(f'{$UP / 1e6:.0f}')") MB/s, ${UP_SECS} s in all; stored sha256 $([ "$STORED" = "$SHA" ] && echo matches || echo DIFFERS)"

check() { [ "$(sha256sum "$WORK/down.bin" | cut -d' ' -f1)" = "$SHA" ] && echo match || echo DIFFER; rm -f "$WORK/down.bin"; }
DOWN=$(curl -s -o "$WORK/down.bin" -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION")
echo "${SIZE_GIB} GiB download through the hub: $(python3 -c "print(f'{$DOWN / 1e6:.0f}')") MB/s; bytes $(check)"

# The same server with presigned downloads: the hub answers a redirect, S3 sends the bytes.
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
MODELHUB_S3_PRESIGNED_DOWNLOADS=true start_server
HUB_BYTES=$(curl -s -o /dev/null -w '%{size_header}+%{size_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION")
DOWN=$(curl -sL -o "$WORK/down.bin" -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION")
echo "${SIZE_GIB} GiB presigned download: $(python3 -c "print(f'{$DOWN / 1e6:.0f}')") MB/s from S3, $((HUB_BYTES)) bytes from the hub (its redirect); bytes $(check)"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

# Two replicas on PostgreSQL and Redis, the same bucket, behind nginx.
psql -q "$PG_ADMIN/postgres" -c "CREATE DATABASE $PG_DB"
export MODELHUB_DATABASE_URL="$PG_ADMIN/$PG_DB" MODELHUB_REDIS_URL="$REDIS" MODELHUB_REDIS_PREFIX="s3-bench-$$" \
  MODELHUB_JWT_SECRET="s3-benchmark-secret-of-at-least-32-characters" MODELHUB_STORAGE_URL=s3://bench/balanced
unset MODELHUB_S3_PRESIGNED_DOWNLOADS
LB_PORT=$((PORT + 2))
start_replicas "$PORT" $((PORT + 1))
start_balancer "$LB_PORT" "$PORT" $((PORT + 1))
BASE="http://127.0.0.1:$LB_PORT"
TOKEN=""
gql '{"query":"mutation { register(input: {username: \"bench\", email: \"bench@example.com\", password: \"correct horse battery staple\"}) { token } }"}' >/dev/null
TOKEN=$(gql '{"query":"mutation { login(input: {username: \"bench\", password: \"correct horse battery staple\"}) { token } }"}' | json 'd["data"]["login"]["token"]')
UP=$(curl -s -o "$WORK/up.json" -w '%{speed_upload}' "$BASE/graphql" -H "authorization: Bearer $TOKEN" \
  -F operations="{\"query\":\"mutation(\$input: CreateModelInput!, \$file: Upload!) { createModel(input: \$input, file: \$file) { currentVersion { id sha256 } } }\",\"variables\":{\"file\":null,\"input\":{\"name\":\"large\",\"framework\":\"bench\",\"version\":\"1.0.0\",\"format\":\"OTHER\"}}}" \
  -F map='{"0":["variables.file"]}' -F "0=@$FILE")
VERSION=$(json 'd["data"]["createModel"]["currentVersion"]["id"]' <"$WORK/up.json")
STORED=$(json 'd["data"]["createModel"]["currentVersion"]["sha256"]' <"$WORK/up.json")
echo "${SIZE_GIB} GiB upload through the balancer (two replicas, PostgreSQL, S3): $(python3 -c "print(f'{$UP / 1e6:.0f}')") MB/s; stored sha256 $([ "$STORED" = "$SHA" ] && echo matches || echo DIFFERS)"
DOWN=$(curl -s -o "$WORK/down.bin" -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION")
echo "${SIZE_GIB} GiB download through the balancer: $(python3 -c "print(f'{$DOWN / 1e6:.0f}')") MB/s; bytes $(check)"
rm -f "$FILE"
