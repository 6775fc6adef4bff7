#!/usr/bin/env bash
# One large file through S3: uploads a file bigger than CopyObject's 5 GiB limit (6 GiB by
# default) to a hub whose store is the S3 test server (moto, in target/ci-moto as .ci/run
# makes it), downloads it back through the hub and through a presigned redirect, and prints
# the speeds and whether the bytes match.
#
#   bash benches/s3_large.sh              # 6 GiB
#   SIZE_GIB=1 bash benches/s3_large.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZE_GIB=${SIZE_GIB:-6}
PORT=${PORT:-18090}
S3_PORT=${S3_PORT:-19000}
WORK=$(mktemp -d /tmp/modelhub-s3-large.XXXXXX)
BASE="http://127.0.0.1:$PORT"

MOTO_VENV="$ROOT/target/ci-moto"
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  python3 -m venv "$MOTO_VENV" && "$MOTO_VENV/bin/pip" install --quiet 'moto[server]==5.2.5'
fi
cargo build --release --quiet

MOTO_PID="" SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# moto keeps objects over 16 MB in temporary files: keep them beside the test file.
TMPDIR="$WORK" "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$S3_PORT/" && break; sleep 0.1; done
curl -sf -o /dev/null -X PUT "http://127.0.0.1:$S3_PORT/bench"

source benches/lib.sh
mkdir -p "$WORK/data"
export AWS_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true MODELHUB_STORAGE_URL=s3://bench/large
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
rm -f "$FILE"

check() { [ "$(sha256sum "$WORK/down.bin" | cut -d' ' -f1)" = "$SHA" ] && echo match || echo DIFFER; rm -f "$WORK/down.bin"; }
DOWN=$(curl -s -o "$WORK/down.bin" -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION")
echo "${SIZE_GIB} GiB download through the hub: $(python3 -c "print(f'{$DOWN / 1e6:.0f}')") MB/s; bytes $(check)"

# The same server with presigned downloads: the hub answers a redirect, S3 sends the bytes.
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
MODELHUB_S3_PRESIGNED_DOWNLOADS=true start_server
HUB_BYTES=$(curl -s -o /dev/null -w '%{size_header}+%{size_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION")
DOWN=$(curl -sL -o "$WORK/down.bin" -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION")
echo "${SIZE_GIB} GiB presigned download: $(python3 -c "print(f'{$DOWN / 1e6:.0f}')") MB/s from S3, $((HUB_BYTES)) bytes from the hub (its redirect); bytes $(check)"
