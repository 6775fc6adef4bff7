"""Downloads through the pinned huggingface_hub client from a hub whose store is S3 with
presigned downloads on (run by tests/api/hf.rs).

MODELHUB_HF_TOKEN reads the repository MODELHUB_HF_REPO, whose file `w.safetensors` has the
SHA-256 MODELHUB_HF_SHA256. Every response the client receives is recorded, so the tests see
the hub's redirect and the bytes coming from the store (AWS_ENDPOINT), not from the hub.
"""

import hashlib
import os
import unittest
from pathlib import Path

import httpx2
from huggingface_hub import hf_hub_download, set_client_factory, snapshot_download
from huggingface_hub.utils._http import hf_request_event_hook

ENDPOINT = os.environ["HF_ENDPOINT"]
STORE = os.environ["AWS_ENDPOINT"]
TOKEN = os.environ["MODELHUB_HF_TOKEN"]
REPO = os.environ["MODELHUB_HF_REPO"]
SHA256 = os.environ["MODELHUB_HF_SHA256"]
WORK = Path(os.environ["MODELHUB_HF_WORK"])

# (method, url, status) of every response, in order.
SEEN: list[tuple[str, str, int]] = []


def record(response: httpx2.Response) -> None:
    SEEN.append((response.request.method, str(response.request.url), response.status_code))


set_client_factory(
    lambda: httpx2.Client(
        event_hooks={"request": [hf_request_event_hook], "response": [record]},
        follow_redirects=True,
        timeout=None,
    )
)


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class PresignedDownloads(unittest.TestCase):
    def setUp(self) -> None:
        SEEN.clear()

    def assert_bytes_came_from_the_store(self) -> None:
        hub_gets = [s for s in SEEN if s[0] == "GET" and s[1].startswith(ENDPOINT) and "/resolve/" in s[1]]
        store_gets = [s for s in SEEN if s[0] == "GET" and s[1].startswith(STORE)]
        self.assertTrue(hub_gets, SEEN)
        self.assertTrue(all(status == 302 for _, _, status in hub_gets), SEEN)
        self.assertEqual([status for _, _, status in store_gets], [200], SEEN)

    def test_hf_hub_download_follows_the_redirect(self) -> None:
        path = hf_hub_download(REPO, "w.safetensors", token=TOKEN, cache_dir=WORK / "cache")
        self.assertEqual(sha256_of(path), SHA256)
        self.assert_bytes_came_from_the_store()
        # The cached copy is confirmed by a HEAD, which the hub answers itself: no new bytes.
        SEEN.clear()
        again = hf_hub_download(REPO, "w.safetensors", token=TOKEN, cache_dir=WORK / "cache")
        self.assertEqual(again, path)
        self.assertFalse([s for s in SEEN if s[1].startswith(STORE)], SEEN)

    def test_snapshot_download_follows_the_redirect(self) -> None:
        folder = snapshot_download(REPO, token=TOKEN, cache_dir=WORK / "snapshot")
        self.assertEqual(sha256_of(os.path.join(folder, "w.safetensors")), SHA256)
        self.assert_bytes_came_from_the_store()


if __name__ == "__main__":
    unittest.main(verbosity=2)
