"""Seeds a running Model Hub with N models through its public API (multipart uploads).

usage: seed.py BASE_URL TOKEN COUNT [FIRST]
Creates models number FIRST (default 0) to COUNT - 1, so a catalog can be grown in steps.
Each model gets one small safetensors version; names are unique. Prints models/s.
"""

import json
import struct
import sys
import threading
import time
import urllib.request

BASE, TOKEN, COUNT = sys.argv[1], sys.argv[2], int(sys.argv[3])
FIRST = int(sys.argv[4]) if len(sys.argv) > 4 else 0
QUERY = (
    "mutation($input: CreateModelInput!, $file: Upload!) "
    "{ createModel(input: $input, file: $file) { id } }"
)
FRAMEWORKS = ["pytorch", "scikit-learn", "tensorflow", "onnx", "xgboost"]


def safetensors(seed: int) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    return struct.pack("<Q", len(header)) + header + struct.pack("<4f", seed, seed + 1, seed + 2, seed + 3)


def upload(i: int) -> None:
    boundary = "----modelhub-bench"
    operations = json.dumps({
        "query": QUERY,
        "variables": {
            "file": None,
            "input": {
                "name": f"model-{i:06d}",
                "description": f"benchmark model number {i}",
                "framework": FRAMEWORKS[i % len(FRAMEWORKS)],
                "version": "v1.0.0",
                "tags": ["bench", f"group-{i % 20}"],
                "taskType": "classification",
            },
        },
    })
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{operations}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{{"0": ["variables.file"]}}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="0"; filename="w.safetensors"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode(),
        safetensors(i),
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    request = urllib.request.Request(
        f"{BASE}/graphql",
        data=b"".join(parts),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": f"Bearer {TOKEN}",
        },
    )
    with urllib.request.urlopen(request) as response:
        body = json.load(response)
    if "errors" in body:
        raise SystemExit(f"upload {i} failed: {body['errors']}")


failures = []


def worker(start: int, step: int) -> None:
    try:
        for i in range(start, COUNT, step):
            upload(i)
    except Exception as error:  # reported below; the other workers stop at their next error
        failures.append(error)


began = time.time()
threads = [threading.Thread(target=worker, args=(FIRST + k, 4)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.time() - began
if failures:
    raise SystemExit(f"seeding failed: {failures[0]}")
print(f"seeded {COUNT - FIRST} models in {elapsed:.1f} s ({(COUNT - FIRST) / elapsed:.0f} uploads/s)")
