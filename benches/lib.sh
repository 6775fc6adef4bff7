# Sourced by the benchmark scripts, which set ROOT, WORK, PORT and BASE first.

# Starts the release server on its embedded defaults (SQLite, local disk) in $WORK/data, with
# the per-user rate limits lifted (the benchmark's single user seeds thousands of models and
# runs models thousands of times), and
# waits until it answers. Extra settings come from the caller's environment.
start_server() {
  MODELHUB_LIMIT_UPLOAD=1000000/1 MODELHUB_LIMIT_LOGIN=1000000/1 MODELHUB_LIMIT_REGISTER=1000000/1 \
  MODELHUB_LIMIT_PREDICT=1000000/1 MODELHUB_BIND="127.0.0.1:$PORT" MODELHUB_DATA_DIR="$WORK/data" MODELHUB_LOG=warn \
    "$ROOT/target/release/modelhub" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
}

# Prints a Python expression over the JSON document on stdin (`d`).
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The Python of the pinned Hugging Face client (tests/hf/requirements.txt, the virtualenv
# .ci/run makes), made if missing.
hf_python() {
  local venv="$ROOT/target/ci-hf"
  if ! "$venv/bin/python" -c 'import huggingface_hub, transformers' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet -r "$ROOT/tests/hf/requirements.txt"
  fi
  echo "$venv/bin/python"
}

# Starts two release servers on ports $1 and $2 (SERVER_PID and SECOND_PID), on whatever
# database, store and Redis the caller's environment names, each with its own data directory,
# and waits until both answer.
start_replicas() {
  local port
  for port in "$1" "$2"; do
    MODELHUB_LIMIT_UPLOAD=1000000/1 MODELHUB_LIMIT_LOGIN=1000000/1 MODELHUB_LIMIT_REGISTER=1000000/1 \
    MODELHUB_BIND="127.0.0.1:$port" MODELHUB_DATA_DIR="$WORK/data-$port" MODELHUB_LOG=warn \
      "$ROOT/target/release/modelhub" >>"$WORK/server.log" 2>&1 &
    if [ "$port" = "$1" ]; then SERVER_PID=$!; else SECOND_PID=$!; fi
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  done
}

# Starts nginx on port $1, balancing round-robin over the servers on ports $2 and $3, as the
# README's deployment guide sets it up: kept-alive upstream connections, request and answer
# bodies streamed through unbuffered, no body size limit. Stopped by stop_balancer.
start_balancer() {
  command -v nginx >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
  cat >"$WORK/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_max_body_size 0;
  client_body_temp_path $WORK/nginx-body;
  proxy_temp_path $WORK/nginx-proxy;
  upstream hub { server 127.0.0.1:$2; server 127.0.0.1:$3; keepalive 64; }
  server {
    listen 127.0.0.1:$1;
    location / {
      proxy_pass http://hub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
    }
  }
}
CONF
  nginx -c "$WORK/nginx.conf"
}

stop_balancer() {
  [ -f "$WORK/nginx.pid" ] && nginx -c "$WORK/nginx.conf" -s stop 2>/dev/null || true
}
