"""Times the files page of a version of many files.

usage: files_page.py BASE_URL TOKEN [FILES] [REQUESTS]
Uploads one version of FILES (default 1,000) small JSON files in sub-folders in one request,
then asks REQUESTS (default 300) times, one at a time, for a page of 100 of its files and
prints p50 and p99 in milliseconds.
"""

import http.client
import json
import sys
import time
import urllib.parse

BASE, TOKEN = sys.argv[1], sys.argv[2]
FILES = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
REQUESTS = int(sys.argv[4]) if len(sys.argv) > 4 else 300


# One kept-alive connection, so the timings are the server's answer and not connection set-up.
_url = urllib.parse.urlsplit(BASE)
connection = http.client.HTTPConnection(_url.hostname, _url.port, timeout=600)


def post(body: bytes, content_type: str) -> dict:
    connection.request(
        "POST",
        "/graphql",
        body=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {TOKEN}"},
    )
    answer = json.loads(connection.getresponse().read())
    if "errors" in answer:
        raise SystemExit(f"request failed: {answer['errors']}")
    return answer["data"]


paths = [f"shard-{i // 100:02d}/part-{i:04d}.json" for i in range(FILES)]
operations = json.dumps({
    "query": "mutation($input: CreateModelInput!, $files: [FileUpload!]) "
             "{ createModel(input: $input, files: $files) { currentVersion { id } } }",
    "variables": {
        "input": {"name": f"many-files-{FILES}", "framework": "bench", "version": "v1.0.0"},
        "files": [{"path": p, "file": None} for p in paths],
    },
})
upload_map = json.dumps({str(i): [f"variables.files.{i}.file"] for i in range(FILES)})
boundary = "----modelhub-files-bench"
parts = [
    f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{operations}\r\n'.encode(),
    f'--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{upload_map}\r\n'.encode(),
]
for i in range(FILES):
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{i}"; filename="f{i}.json"\r\n\r\n'.encode()
        + json.dumps({"part": i}).encode()
        + b"\r\n"
    )
parts.append(f"--{boundary}--\r\n".encode())
began = time.time()
created = post(b"".join(parts), f"multipart/form-data; boundary={boundary}")
print(f"{FILES}-file version uploaded in one request in {time.time() - began:.2f} s")
version = created["createModel"]["currentVersion"]["id"]

page = json.dumps({
    "query": "query($id: ID!) { modelVersion(id: $id) { files(first: 100) { totalCount "
             "edges { node { path sizeBytes sha256 } } } } }",
    "variables": {"id": version},
}).encode()
timings = []
for _ in range(REQUESTS):
    began = time.perf_counter()
    post(page, "application/json")
    timings.append((time.perf_counter() - began) * 1000)
timings.sort()
p50 = timings[len(timings) // 2]
p99 = timings[int(len(timings) * 0.99) - 1]
print(f"files page (100 of {FILES}): p50 {p50:.2f} ms, p99 {p99:.2f} ms over {REQUESTS} requests")
