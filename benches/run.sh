#!/usr/bin/env bash
# Model Hub throughput benchmark. Prints, for 64 MiB and 1 GiB files: upload MB/s and the
# server's peak RSS, download MB/s beside nginx serving the same file (the physical reference)
# and the ratio, and the disk's `dd conv=fsync` write speed; the same 1 GiB as a version of 8
# files uploaded in one request and downloaded as one tar, against the one-file figures;
# hf_hub_download of the 1 GiB file against curl of the same URL, and snapshot_download of the
# 8 files (the pinned huggingface_hub, in target/ci-hf as .ci/run makes it); the
# p50 of a page of 100 files of a 1,000-file version; then the latency and rate of the model
# list query (a page of 50 with owners and versions) with 10,000 models stored; `predict`'s
# p50/p99 on the seed's random forest and a small network (1 and 100 rows) and its rate at 16
# connections; then the 1 GiB
# through S3 and through a balancer in front of two replicas (benches/s3.sh).
#
#   bash benches/run.sh            # everything (installs nginx, wrk and huggingface_hub if missing)
#   MODELS=1000 bash benches/run.sh
#
# Runs on loopback only; the server uses its embedded defaults (SQLite, local disk) in a
# temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODELS=${MODELS:-10000}
PORT=${PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
WORK=$(mktemp -d /tmp/modelhub-bench.XXXXXX)
BASE="http://127.0.0.1:$PORT"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need curl; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk curl >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk curl >/dev/null
fi

cargo build --release --quiet
SERVER_PID=""
NGINX_CONF="$WORK/nginx.conf"
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && nginx -c "$NGINX_CONF" -s stop 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/data" "$WORK/www"
chmod 755 "$WORK" "$WORK/www"   # nginx's workers run as an unprivileged user
source benches/lib.sh
start_server

cat >"$NGINX_CONF" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; }
}
CONF
nginx -c "$NGINX_CONF"

gql() { curl -sf "$BASE/graphql" -H 'content-type: application/json' ${TOKEN:+-H "authorization: Bearer $TOKEN"} -d "$1"; }
gql '{"query":"mutation { register(input: {username: \"bench\", email: \"bench@example.com\", password: \"correct horse battery staple\"}) { token } }"}' >/dev/null
TOKEN=$(gql '{"query":"mutation { login(input: {username: \"bench\", password: \"correct horse battery staple\"}) { token } }"}' | json 'd["data"]["login"]["token"]')

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status"; }
reset_peak() { echo 5 >"/proc/$SERVER_PID/clear_refs"; }
mbps() { python3 -c "print(f'{$1 / 1e6:.0f}')"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; $(date -u +%FT%TZ)"
for SIZE_MIB in 64 1024; do
  FILE="$WORK/www/model-$SIZE_MIB.bin"
  # Random bytes, each 128 MiB (and so each part of the 8-file version) starting with a zero
  # byte: no pickle opcode, so the inspection clears them as inert data.
  LEFT=$((SIZE_MIB * 1024 * 1024))
  : >"$FILE"
  while [ "$LEFT" -gt 0 ]; do
    CHUNK=$((LEFT < 128 * 1024 * 1024 ? LEFT : 128 * 1024 * 1024))
    { printf '\0'; head -c $((CHUNK - 1)) /dev/urandom; } >>"$FILE"
    LEFT=$((LEFT - CHUNK))
  done
  chmod 644 "$FILE"
  if [ "$SIZE_MIB" = 1024 ]; then
    # The same bytes in 8 parts, for the version of 8 files: written now, so that both uploads
    # start from the same settled disk.
    split -b 128M -d "$FILE" "$WORK/part-"
  fi
  sync
  DD=$(dd if=/dev/zero of="$WORK/dd.bin" bs=1M count="$SIZE_MIB" conv=fsync 2>&1 | awk -F', ' '/copied/ {print $NF}')
  rm -f "$WORK/dd.bin"

  reset_peak
  UP_BEFORE=$(rss_kib)
  UP=$(curl -s -o "$WORK/up.json" -w '%{speed_upload}' "$BASE/graphql" -H "authorization: Bearer $TOKEN" \
    -F operations="{\"query\":\"mutation(\$input: CreateModelInput!, \$file: Upload!) { createModel(input: \$input, file: \$file) { currentVersion { id } } }\",\"variables\":{\"file\":null,\"input\":{\"name\":\"big-$SIZE_MIB\",\"framework\":\"bench\",\"version\":\"1.0.0\",\"format\":\"OTHER\"}}}" \
    -F map='{"0":["variables.file"]}' -F "0=@$FILE")
  UP_PEAK=$(peak_kib)
  VERSION=$(json 'd["data"]["createModel"]["currentVersion"]["id"]' <"$WORK/up.json")

  # Random bytes can start like a pickle the inspection cannot read, which holds the file:
  # the owner (the benchmark's user) takes it anyway.
  reset_peak
  DOWN_BEFORE=$(rss_kib)
  DOWN=$(curl -s -o /dev/null -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION?acceptRisk=true")
  DOWN_PEAK=$(peak_kib)
  NGINX=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$NGINX_PORT/model-$SIZE_MIB.bin")
  DOWN2=$(curl -s -o /dev/null -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION?acceptRisk=true")
  NGINX2=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$NGINX_PORT/model-$SIZE_MIB.bin")

  echo "${SIZE_MIB} MiB upload:   $(mbps "$UP") MB/s (dd conv=fsync: $DD; ratio $(python3 -c "
import re; d='$DD'; v=float(re.findall(r'[0-9.]+', d)[0]) * (1e9 if 'GB' in d else 1e6); print(f'{$UP / v:.0%}')")), server RSS $((UP_BEFORE / 1024)) MiB before, peak $((UP_PEAK / 1024)) MiB"
  echo "${SIZE_MIB} MiB download: $(mbps "$DOWN") / $(mbps "$DOWN2") MB/s vs nginx $(mbps "$NGINX") / $(mbps "$NGINX2") MB/s (ratio $(python3 -c "print(f'{($DOWN + $DOWN2) / ($NGINX + $NGINX2):.0%}')")), server RSS $((DOWN_BEFORE / 1024)) MiB before, peak $((DOWN_PEAK / 1024)) MiB"
  if [ "$SIZE_MIB" = 1024 ]; then
    # The same bytes as a version of 8 files, in one request, and back as one tar.
    PARTS=$(ls "$WORK"/part-*)
    FILES_JSON=$(python3 -c "import json,sys; print(json.dumps([{'path': f'shards/{p.rsplit(\"/\", 1)[1]}.bin', 'file': None} for p in sys.argv[1:]]))" $PARTS)
    MAP_JSON=$(python3 -c "import json; print(json.dumps({str(i): [f'variables.files.{i}.file'] for i in range($(echo "$PARTS" | wc -l))}))")
    FORM=()
    i=0
    for PART in $PARTS; do FORM+=(-F "$i=@$PART"); i=$((i + 1)); done
    UP8=$(curl -s -o "$WORK/up8.json" -w '%{speed_upload}' "$BASE/graphql" -H "authorization: Bearer $TOKEN" \
      -F operations="{\"query\":\"mutation(\$input: CreateModelInput!, \$files: [FileUpload!]) { createModel(input: \$input, files: \$files) { currentVersion { id } } }\",\"variables\":{\"files\":$FILES_JSON,\"input\":{\"name\":\"big-8-files\",\"framework\":\"bench\",\"version\":\"1.0.0\"}}}" \
      -F map="$MAP_JSON" "${FORM[@]}")
    VERSION8=$(json 'd["data"]["createModel"]["currentVersion"]["id"]' <"$WORK/up8.json")
    TAR=$(curl -sf -o /dev/null -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION8?format=tar&acceptRisk=true")
    echo "1024 MiB as 8 files, one request: upload $(mbps "$UP8") MB/s ($(python3 -c "print(f'{$UP8 / $UP:.0%}')") of the one-file upload); tar download $(mbps "$TAR") MB/s ($(python3 -c "print(f'{$TAR * 2 / ($DOWN + $DOWN2):.0%}')") of the one-file download)"
    # The Hugging Face client against curl of the same URL, both writing to memory (/dev/shm)
    # so that the figures are the transfer's, not this disk's; and a snapshot of the 8 files.
    SHM=$(mktemp -d /dev/shm/modelhub-bench.XXXXXX)
    HF=(env HF_ENDPOINT="$BASE" MODELHUB_BENCH_CACHE="$SHM" HF_TOKEN="$TOKEN" HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_XET=1 "$(hf_python)" benches/hf_download.py)
    RESOLVE="$BASE/bench/big-1024/resolve/main/model-1024.bin"
    CURL_HF=$(curl -sf -o "$SHM/hf-curl.bin" -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$RESOLVE")
    HF_ONE=$("${HF[@]}" file bench/big-1024 model-1024.bin)
    CURL_HF2=$(curl -sf -o "$SHM/hf-curl.bin" -w '%{speed_download}' -H "authorization: Bearer $TOKEN" "$RESOLVE")
    rm -f "$SHM/hf-curl.bin"
    HF_ONE2=$("${HF[@]}" file bench/big-1024 model-1024.bin)
    HF_SNAP=$("${HF[@]}" snapshot bench/big-8-files)
    rm -rf "$SHM"
    echo "1024 MiB through the Hugging Face client: hf_hub_download $(mbps "$HF_ONE") / $(mbps "$HF_ONE2") MB/s vs curl of the same URL $(mbps "$CURL_HF") / $(mbps "$CURL_HF2") MB/s (ratio $(python3 -c "print(f'{($HF_ONE + $HF_ONE2) / ($CURL_HF + $CURL_HF2):.0%}')")); snapshot_download of the 8-file version $(mbps "$HF_SNAP") MB/s"
    rm -f "$WORK"/part-*
  fi
  rm -f "$FILE"
done

python3 benches/seed.py "$BASE" "$TOKEN" "$MODELS"
BODY=$(python3 -c 'import json; print(json.dumps({"query": "{ models(first: 50, sort: {field: DOWNLOADS, direction: DESC}) { edges { node { id name framework tags owner { username } currentVersion { version sizeBytes } versions { edges { node { version sha256 } } } } } } }"}))')
COUNT=$(gql '{"query":"{ models { totalCount } }"}' | json 'd["data"]["models"]["totalCount"]')
echo "models stored: $COUNT; server RSS before load $(( $(rss_kib) / 1024 )) MiB"
MODELHUB_BENCH_TOKEN="$TOKEN" MODELHUB_BENCH_BODY="$BODY" wrk -t1 -c1 -d10s -s benches/list.lua "$BASE/graphql" | grep 'list query' | sed 's/^/1 connection:  /'
MODELHUB_BENCH_TOKEN="$TOKEN" MODELHUB_BENCH_BODY="$BODY" wrk -t2 -c16 -d10s -s benches/list.lua "$BASE/graphql" | grep 'list query' | sed 's/^/16 connections: /'
echo "server RSS after load $(( $(rss_kib) / 1024 )) MiB"
# A page of files, answered by the server itself each time (the response cache off).
kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
MODELHUB_RESPONSE_CACHE_SECS=0 start_server
python3 benches/files_page.py "$BASE" "$TOKEN" 1000 300
kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
# Model runs (benches/inference.sh), on a server of their own.
PORT=$((PORT + 20)) bash benches/inference.sh
# The same 1 GiB through S3 (the test server): one replica, with a presigned download beside
# the hub's own; then two replicas on PostgreSQL behind nginx.
PORT=$((PORT + 10)) bash benches/s3.sh
