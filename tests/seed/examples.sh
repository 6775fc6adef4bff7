#!/usr/bin/env bash
# The seed's usage examples (upload with cURL, list and download with Python `requests`), as
# the seed writes them, against a running hub: its address stands where the seed has its own
# host, a real token where it has YOUR_TOKEN, and the uploaded model's id where it has 2.
# Run in a scratch directory holding `model.joblib`; each answer is written to a file there
# (upload.json, models.json, downloaded_model.joblib) for the calling test to check.
#
#   HUB=http://127.0.0.1:8080 TOKEN=… PYTHON=python3 tests/seed/examples.sh
set -euo pipefail
: "${HUB:?the address of the hub}" "${TOKEN:?an access token}" "${PYTHON:?a Python with requests}"
YOUR_TOKEN="$TOKEN"

# 1. Upload a Model (cURL)
curl -sS --fail-with-body -X POST "$HUB/api/v1/models/" \
  -H "Authorization: Bearer $YOUR_TOKEN" \
  -F "name=My ML Model" \
  -F "description=A great model for classification" \
  -F "framework=scikit-learn" \
  -F "version=v1.0.0" \
  -F "format=joblib" \
  -F "task_type=classification" \
  -F "tags=[\"classification\", \"scikit-learn\"]" \
  -F "license=MIT" \
  -F "changelog=Initial release" \
  -F "metadata={\"accuracy\": 0.95}" \
  -F "model_file=@model.joblib" > upload.json

MODEL_ID="$("$PYTHON" -c 'import json; print(json.load(open("upload.json"))["id"])')"
export HUB YOUR_TOKEN MODEL_ID

# 2. List Models (Python)
"$PYTHON" - <<'PY'
import json, os
import requests

headers = {"Authorization": f"Bearer {os.environ['YOUR_TOKEN']}"}
response = requests.get(
    f"{os.environ['HUB']}/api/v1/models/",
    headers=headers
)
response.raise_for_status()
models = response.json()
json.dump(models, open("models.json", "w"))
PY

# 3. Download Model (Python)
"$PYTHON" - <<'PY'
import os
import requests

headers = {"Authorization": f"Bearer {os.environ['YOUR_TOKEN']}"}
response = requests.get(
    f"{os.environ['HUB']}/api/v1/models/{os.environ['MODEL_ID']}/download",
    headers=headers
)
response.raise_for_status()

with open("downloaded_model.joblib", "wb") as f:
    f.write(response.content)
PY
