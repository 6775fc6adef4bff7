# Sourced by the benchmark scripts, which set ROOT, WORK, PORT and BASE first.

# Starts the release server on its embedded defaults (SQLite, local disk) in $WORK/data, with
# the per-user rate limits lifted (the benchmark's single user seeds thousands of models), and
# waits until it answers. Extra settings come from the caller's environment.
start_server() {
  MODELHUB_LIMIT_UPLOAD=1000000/1 MODELHUB_LIMIT_LOGIN=1000000/1 MODELHUB_LIMIT_REGISTER=1000000/1 \
  MODELHUB_BIND="127.0.0.1:$PORT" MODELHUB_DATA_DIR="$WORK/data" MODELHUB_LOG=warn \
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
