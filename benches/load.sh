#!/usr/bin/env bash
# Load test: 64 connections for 60 s each on the model list query, on modelVersion lookups and
# on downloads of a small file, with 10,000 models stored, then the list alone and with
# downloads running beside it. Prints requests/s, p50/p99 latency and errors for each, and the
# server's RSS before and after. Then the list without the response cache, at 10,000 models
# and again after growing the catalog to 100,000 (BIG_MODELS; 0 skips it), with the ratio of
# their p50 latencies: a page must cost the same however large the catalog is.
#
# All of it runs on SQLite (the embedded default) and again on PostgreSQL (a database of its
# own on MODELHUB_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432; ENGINES=sqlite
# skips it), and the figures are printed side by side. Then the list (cache on and off) through
# nginx in front of two replicas on that PostgreSQL database and Redis (MODELHUB_BENCH_REDIS_URL,
# default redis://127.0.0.1:6379).
#
#   bash benches/load.sh                 # defaults below
#   CONNECTIONS=32 SECONDS_EACH=20 MODELS=2000 BIG_MODELS=20000 bash benches/load.sh
#
# Loopback only; the servers run in a temporary directory, with the per-user rate limits lifted
# for the benchmark's single user. The list runs twice: with the response cache (the default: a
# repeated page is a cache hit) and, after a restart on the same data with
# MODELHUB_RESPONSE_CACHE_SECS=0, without it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODELS=${MODELS:-10000}
BIG_MODELS=${BIG_MODELS:-100000}
CONNECTIONS=${CONNECTIONS:-64}
SECONDS_EACH=${SECONDS_EACH:-60}
ENGINES=${ENGINES:-sqlite postgres}
PG_ADMIN=${MODELHUB_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
REDIS=${MODELHUB_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
PORT=${PORT:-18082}
WORK=$(mktemp -d /tmp/modelhub-load.XXXXXX)
BASE="http://127.0.0.1:$PORT"
PG_DB="modelhub_load_$$"

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
source benches/lib.sh
SERVER_PID="" SECOND_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$SECOND_PID" ] && kill "$SECOND_PID" 2>/dev/null || true
  stop_balancer
  case " $ENGINES " in *" postgres "*) psql -q "$PG_ADMIN/postgres" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" 2>/dev/null || true ;; esac
  rm -rf "$WORK"
}
trap cleanup EXIT

rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$SERVER_PID/status"; }
cat >"$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format("%.0f requests/s, p50 %.2f ms, p99 %.2f ms, errors %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
LUA
cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LOAD_TOKEN")
wrk.body = os.getenv("LOAD_BODY")
LUA
cat "$WORK/report.lua" >>"$WORK/post.lua"
cat >"$WORK/get.lua" <<'LUA'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LOAD_TOKEN")
LUA
cat "$WORK/report.lua" >>"$WORK/get.lua"

LIST=$(python3 -c 'import json; print(json.dumps({"query": "{ models(first: 50) { totalCount edges { node { id name framework tags owner { username } currentVersion { version sizeBytes } versions(first: 5) { edges { node { version sha256 } } } } } } }"}))')
# Runs wrk: `run NAME BODY SCRIPT URL` prints "NAME: figures" and keeps it in $WORK/$ENGINE.txt.
run() {
  LOAD_TOKEN="$TOKEN" LOAD_BODY="$2" wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --timeout 10s -s "$3" "$4" \
    | tail -1 | sed "s/^/$1: /" | tee -a "$WORK/$ENGINE.txt"
}

# One engine's pass: the server on MODELHUB_DATABASE_URL (exported by the caller), seeded.
pass() {
  ENGINE=$1
  : >"$WORK/$ENGINE.txt"
  rm -rf "$WORK/data"
  mkdir -p "$WORK/data"
  start_server
  TOKEN=$(curl -sf "$BASE/graphql" -H 'content-type: application/json' \
    -d '{"query":"mutation { register(input: {username: \"loader\", email: \"loader@example.com\", password: \"correct horse battery staple\"}) { token } }"}' \
    | json 'd["data"]["register"]["token"]')
  python3 benches/seed.py "$BASE" "$TOKEN" "$MODELS"
  VERSION=$(curl -sf "$BASE/graphql" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"query":"{ models(first: 1) { edges { node { currentVersion { id } } } } }"}' \
    | json 'd["data"]["models"]["edges"][0]["node"]["currentVersion"]["id"]')
  LOOKUP=$(python3 -c "import json; print(json.dumps({'query': 'query(\$id: ID!) { modelVersion(id: \$id) { id version sha256 sizeBytes format model { name } } }', 'variables': {'id': '$VERSION'}}))")
  echo "== $ENGINE: $(nproc) cores; $MODELS models; $CONNECTIONS connections, ${SECONDS_EACH}s each; $(date -u +%FT%TZ)"
  echo "server RSS before: $(rss) MiB"
  run "model list (50 with owners and versions)" "$LIST" "$WORK/post.lua" "$BASE/graphql"
  run "modelVersion lookup" "$LOOKUP" "$WORK/post.lua" "$BASE/graphql"
  run "download of a $(curl -sf -o /dev/null -w '%{size_download}' -H "authorization: Bearer $TOKEN" "$BASE/files/$VERSION")-byte file" "" "$WORK/get.lua" "$BASE/files/$VERSION"
  # Downloads are counted off the request path and never empty the response cache: the list
  # keeps most of its throughput while they run beside it (each side gets half the connections).
  HALF=$((CONNECTIONS / 2))
  CONNECTIONS=$HALF run "model list alone (${HALF} connections)" "$LIST" "$WORK/post.lua" "$BASE/graphql"
  ENGINE=$ENGINE-beside CONNECTIONS=$HALF run "  downloads beside it (${HALF} connections)" "" "$WORK/get.lua" "$BASE/files/$VERSION" >/dev/null &
  BESIDE=$!
  CONNECTIONS=$HALF run "  model list while they run (${HALF} connections)" "$LIST" "$WORK/post.lua" "$BASE/graphql"
  wait "$BESIDE"
  cat "$WORK/$ENGINE-beside.txt" | tee -a "$WORK/$ENGINE.txt"
  echo "server RSS after: $(rss) MiB"
  kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  MODELHUB_RESPONSE_CACHE_SECS=0 start_server
  SMALL=$(run "model list, response cache off, $MODELS models" "$LIST" "$WORK/post.lua" "$BASE/graphql")
  echo "$SMALL"
  if [ "$BIG_MODELS" -gt "$MODELS" ]; then
    python3 benches/seed.py "$BASE" "$TOKEN" "$BIG_MODELS" "$MODELS"
    BIG=$(run "model list, response cache off, $BIG_MODELS models" "$LIST" "$WORK/post.lua" "$BASE/graphql")
    echo "$BIG"
    p50() { sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' <<<"$1"; }
    echo "p50 at $BIG_MODELS models / p50 at $MODELS models: $(python3 -c "print(f'{$(p50 "$BIG") / $(p50 "$SMALL"):.2f}')")"
  fi
  kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

for ENGINE in $ENGINES; do
  case "$ENGINE" in
    sqlite) unset MODELHUB_DATABASE_URL; pass sqlite ;;
    postgres)
      psql -q "$PG_ADMIN/postgres" -c "CREATE DATABASE $PG_DB"
      MODELHUB_DATABASE_URL="$PG_ADMIN/$PG_DB" pass postgres
      ;;
  esac
done
if [ "$(echo $ENGINES | wc -w)" -gt 1 ]; then
  echo "== side by side (sqlite | postgres)"
  paste -d'|' "$WORK/sqlite.txt" <(cut -d: -f2- "$WORK/postgres.txt") | sed 's/|/ | postgres:/'
fi

# Two replicas on the PostgreSQL data behind nginx, sharing Redis.
case " $ENGINES " in *" postgres "*)
  export MODELHUB_DATABASE_URL="$PG_ADMIN/$PG_DB" MODELHUB_REDIS_URL="$REDIS" MODELHUB_REDIS_PREFIX="load-$$"
  export MODELHUB_JWT_SECRET="load-benchmark-secret-of-at-least-32-characters"
  ENGINE=balanced
  : >"$WORK/$ENGINE.txt"
  FIRST_PORT=$PORT SECOND_PORT=$((PORT + 1)) LB_PORT=$((PORT + 2))
  start_replicas "$FIRST_PORT" "$SECOND_PORT"
  start_balancer "$LB_PORT" "$FIRST_PORT" "$SECOND_PORT"
  TOKEN=$(curl -sf "http://127.0.0.1:$LB_PORT/graphql" -H 'content-type: application/json' \
    -d '{"query":"mutation { login(input: {username: \"loader\", password: \"correct horse battery staple\"}) { token } }"}' \
    | json 'd["data"]["login"]["token"]')
  echo "== two replicas behind nginx, PostgreSQL + Redis, $MODELS models"
  run "model list through the balancer" "$LIST" "$WORK/post.lua" "http://127.0.0.1:$LB_PORT/graphql"
  run "model list on one replica directly" "$LIST" "$WORK/post.lua" "http://127.0.0.1:$FIRST_PORT/graphql"
  ;;
esac
