"""Resumable uploads through the pinned tuspy client (run by tests/api/resumable.rs).

MODELHUB_TUS_A and MODELHUB_TUS_B are two replicas of one hub; MODELHUB_TUS_TOKEN an account's
token on both; MODELHUB_TUS_FILE the file to send. The upload starts on A, stops half-way (as a
client killed mid-transfer would), and a new client resumes it on B from the offset B reports;
the finished upload is then taken into a model by its id. Prints the model's version SHA-256.
"""

import json
import os
import sys
import urllib.request

from tusclient import client

A, B = os.environ["MODELHUB_TUS_A"], os.environ["MODELHUB_TUS_B"]
TOKEN = os.environ["MODELHUB_TUS_TOKEN"]
FILE = os.environ["MODELHUB_TUS_FILE"]
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
CHUNK = 1024 * 1024

size = os.path.getsize(FILE)
first = client.TusClient(f"{A}/uploads", headers=HEADERS).uploader(
    FILE, chunk_size=CHUNK, metadata={"filename": os.path.basename(FILE)}
)
first.upload(stop_at=size // 2)
assert 0 < first.offset < size, first.offset
url = first.url
upload_id = url.rstrip("/").rsplit("/", 1)[1]

# A new client (nothing remembered but the URL), on the other replica.
resumed = client.TusClient(f"{B}/uploads", headers=HEADERS).uploader(
    FILE, chunk_size=CHUNK, url=f"{B}/uploads/{upload_id}"
)
assert resumed.offset == first.offset, (resumed.offset, first.offset)
resumed.upload()
assert resumed.offset == size, resumed.offset

query = (
    "mutation($input: CreateModelInput!, $files: [FileUpload!]) "
    "{ createModel(input: $input, files: $files) { currentVersion { sha256 sizeBytes } } }"
)
body = json.dumps({
    "query": query,
    "variables": {
        "input": {"name": "sent-with-tuspy", "framework": "PYTORCH", "version": "1.0.0"},
        "files": [{"path": os.path.basename(FILE), "uploadId": upload_id}],
    },
}).encode()
request = urllib.request.Request(
    f"{B}/graphql", data=body, headers={**HEADERS, "Content-Type": "application/json"}
)
answer = json.load(urllib.request.urlopen(request))
if "errors" in answer:
    sys.exit(f"createModel failed: {answer['errors']}")
version = answer["data"]["createModel"]["currentVersion"]
assert version["sizeBytes"] == size, version
print(version["sha256"])
