"""Times `predict` on the inference fixtures, one call at a time over one kept-alive connection.

usage: predict.py BASE_URL TOKEN [CALLS]
Uploads tests/fixtures/inference/random_forest.onnx and mlp.onnx as models, then for each,
with 1 row and with 100 rows, makes CALLS (default 300) calls and prints p50 and p99 in
milliseconds. Prints the request body of one call of the forest with one row to
$WORK/predict.json for the wrk run that follows (benches/predict.lua).
"""

import http.client
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path

BASE, TOKEN = sys.argv[1], sys.argv[2]
CALLS = int(sys.argv[3]) if len(sys.argv) > 3 else 300
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "inference"

_url = urllib.parse.urlsplit(BASE)
connection = http.client.HTTPConnection(_url.hostname, _url.port, timeout=600)


def post(body: bytes, content_type: str) -> dict:
    connection.request("POST", "/graphql", body=body,
                       headers={"Content-Type": content_type, "Authorization": f"Bearer {TOKEN}"})
    answer = json.loads(connection.getresponse().read())
    if "errors" in answer:
        raise SystemExit(f"request failed: {answer['errors']}")
    return answer["data"]


def upload(name: str, file: str) -> str:
    boundary = "modelhub-bench-boundary"
    operations = json.dumps({
        "query": "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { currentVersion { id } } }",
        "variables": {"input": {"name": name, "framework": "onnx", "version": "1.0.0"}, "file": None},
    })
    parts = [
        ("operations", None, operations.encode()),
        ("map", None, json.dumps({"0": ["variables.file"]}).encode()),
        ("0", file, (FIXTURES / file).read_bytes()),
    ]
    body = b""
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return post(body, f"multipart/form-data; boundary={boundary}")["createModel"]["currentVersion"]["id"]


QUERY = "mutation($id: ID!, $inputs: JSON!) { predict(versionId: $id, inputs: $inputs) { outputs { name values } } }"
forest = upload("bench-forest", "random_forest.onnx")
mlp = upload("bench-mlp", "mlp.onnx")
rows = {
    "forest": (forest, "X", json.loads((FIXTURES / "random_forest.expected.json").read_text())["rows"]),
    "mlp": (mlp, "x", json.loads((FIXTURES / "mlp.expected.json").read_text())["rows"]),
}
for name, (version, input_name, data) in rows.items():
    for n in (1, 100):
        body = json.dumps({"query": QUERY, "variables": {"id": version, "inputs": {input_name: data[:n]}}}).encode()
        if name == "forest" and n == 1:
            Path(os.environ.get("WORK", "/tmp"), "predict.json").write_bytes(body)
        post(body, "application/json")  # loads the model
        took = []
        for _ in range(CALLS):
            start = time.perf_counter()
            post(body, "application/json")
            took.append((time.perf_counter() - start) * 1000)
        took.sort()
        p50, p99 = took[len(took) // 2], took[int(len(took) * 0.99) - 1]
        print(f"predict, {name}, {n} row{'s' if n > 1 else ''}: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({CALLS} calls)")
