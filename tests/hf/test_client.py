"""The pinned huggingface_hub client against a Model Hub server (run by tests/api/hf.rs).

The server holds, stored through GraphQL: `hf-owner/Tiny-Folder` (public, 200 files, also
written to MODELHUB_HF_EXPECTED), `hf-owner/secret` (private) and `hf-owner/held` (a pickle
that runs a command, held by the inspection gate), and `hf-owner/big` (public, one 24 MiB
file, also at MODELHUB_HF_BIG), `hf-owner/bert-tiny` (public, tests/fixtures/bert_tiny).
"""

import os
import socket
import subprocess
import sys
import threading
import unittest
import urllib.parse
from pathlib import Path

from huggingface_hub import (
    HfApi,
    file_exists,
    get_safetensors_metadata,
    hf_hub_download,
    list_models,
    list_repo_commits,
    list_repo_files,
    list_repo_refs,
    model_info,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

OWNER = os.environ["MODELHUB_HF_OWNER_TOKEN"]  # an API token with the READ scope
SESSION = os.environ["MODELHUB_HF_OWNER_SESSION"]  # the owner's login token
OTHER = os.environ["MODELHUB_HF_OTHER_TOKEN"]
COMMIT = os.environ["MODELHUB_HF_COMMIT"]
EXPECTED = Path(os.environ["MODELHUB_HF_EXPECTED"])
WORK = Path(os.environ["MODELHUB_HF_WORK"])
REPO = "hf-owner/Tiny-Folder"


def expected_files() -> dict[str, bytes]:
    return {
        p.relative_to(EXPECTED).as_posix(): p.read_bytes()
        for p in EXPECTED.rglob("*")
        if p.is_file()
    }


class Downloads(unittest.TestCase):
    def test_a_file_downloads_anonymously_at_every_kind_of_revision(self):
        want = (EXPECTED / "config.json").read_bytes()
        for revision in (None, "main", "v1.0.0", "1.0.0", COMMIT):
            path = hf_hub_download(REPO, "config.json", revision=revision, token=False)
            self.assertEqual(Path(path).read_bytes(), want, revision)
            self.assertIn(f"/snapshots/{COMMIT}/", path)

    def test_a_snapshot_is_the_version_byte_for_byte(self):
        target = WORK / "snapshot"
        snapshot_download(REPO, local_dir=target, token=False)
        got = {
            p.relative_to(target).as_posix(): p.read_bytes()
            for p in target.rglob("*")
            if p.is_file() and ".cache" not in p.parts
        }
        want = expected_files()
        self.assertEqual(len(want), 200)
        self.assertEqual(sorted(got), sorted(want))
        self.assertTrue(all(got[k] == want[k] for k in want))

    def test_missing_files_and_revisions_are_the_clients_errors(self):
        with self.assertRaises(EntryNotFoundError):
            hf_hub_download(REPO, "no-such-file.json", token=False)
        with self.assertRaises(RevisionNotFoundError):
            hf_hub_download(REPO, "config.json", revision="v9.9.9", token=False)
        with self.assertRaises(RepositoryNotFoundError):
            hf_hub_download("hf-owner/no-such-model", "config.json", token=False)
        for repo_type in ("dataset", "space"):
            with self.assertRaises(RepositoryNotFoundError):
                hf_hub_download(REPO, "config.json", repo_type=repo_type, token=False)
            with self.assertRaises(RepositoryNotFoundError):
                HfApi().repo_info(REPO, repo_type=repo_type, token=False)


class Metadata(unittest.TestCase):
    def test_model_info_lists_the_files_at_the_commit(self):
        info = model_info(REPO, token=False)
        self.assertEqual(info.id, REPO)
        self.assertEqual(info.sha, COMMIT)
        self.assertEqual(info.author, "hf-owner")
        self.assertFalse(info.private)
        self.assertEqual(sorted(s.rfilename for s in info.siblings), sorted(expected_files()))
        self.assertEqual(model_info(REPO, revision="v1.0.0", token=False).sha, COMMIT)

    def test_listings_and_existence(self):
        self.assertEqual(sorted(list_repo_files(REPO, token=False)), sorted(expected_files()))
        self.assertTrue(file_exists(REPO, "tokenizer/part-000.json", token=False))
        self.assertFalse(file_exists(REPO, "tokenizer/nope.json", token=False))
        folders = {
            e.path
            for e in HfApi().list_repo_tree(REPO, token=False)
            if type(e).__name__ == "RepoFolder"
        }
        self.assertEqual(folders, {"a", "tokenizer"})

    def test_paths_info_describes_the_paths_asked(self):
        entries = HfApi().get_paths_info(REPO, ["config.json", "tokenizer", "nope"], token=False)
        self.assertEqual(
            [(type(e).__name__, e.path) for e in entries],
            [("RepoFile", "config.json"), ("RepoFolder", "tokenizer")],
        )
        self.assertEqual(entries[0].size, len((EXPECTED / "config.json").read_bytes()))

    def test_safetensors_metadata_is_read_from_the_header(self):
        meta = get_safetensors_metadata(REPO, token=False)
        header = meta.files_metadata["model.safetensors"]
        self.assertEqual(sum(t.parameter_count for t in header.tensors.values()), 64)

    def test_models_are_listed_as_the_caller_may_see_them(self):
        public = {m.id for m in list_models(author="hf-owner", token=False)}
        self.assertEqual(public, {REPO, "hf-owner/big", "hf-owner/bert-tiny"})
        mine = {m.id for m in list_models(author="hf-owner", token=OWNER)}
        self.assertEqual(mine, public | {"hf-owner/secret", "hf-owner/held"})
        self.assertEqual([m.id for m in list_models(search="folder", token=OWNER)], [REPO])
        self.assertEqual(len(list(list_models(author="hf-owner", token=OWNER, limit=2))), 2)
        found = next(m for m in list_models(search="Folder", token=False))
        self.assertEqual(found.sha, COMMIT)

    def test_versions_are_refs_and_commits_newest_first(self):
        refs = list_repo_refs("hf-owner/secret", token=OWNER)
        head = model_info("hf-owner/secret", token=OWNER).sha
        self.assertEqual([(b.name, b.target_commit) for b in refs.branches], [("main", head)])
        self.assertEqual(sorted(t.name for t in refs.tags), ["1.0.0", "2.0.0"])
        commits = list_repo_commits("hf-owner/secret", token=OWNER)
        self.assertEqual([c.title for c in commits], ["2.0.0", "1.0.0"])
        self.assertEqual(commits[0].commit_id, head)
        self.assertEqual(commits[0].message, "second")
        self.assertEqual(commits[0].authors, ["hf-owner"])
        older = list_repo_commits("hf-owner/secret", revision="1.0.0", token=OWNER)
        self.assertEqual([c.title for c in older], ["1.0.0"])
        with self.assertRaises(RepositoryNotFoundError):
            list_repo_refs("hf-owner/secret", token=OTHER)

    def test_whoami_names_the_token_holder_and_what_it_may_do(self):
        me = HfApi().whoami(token=OWNER)
        self.assertEqual((me["name"], me["auth"]["accessToken"]["role"]), ("hf-owner", "read"))
        me = HfApi().whoami(token=SESSION)
        self.assertEqual((me["name"], me["auth"]["accessToken"]["role"]), ("hf-owner", "write"))
        with self.assertRaises(HfHubHTTPError):
            HfApi().whoami(token="mh_not_a_token")


class Access(unittest.TestCase):
    def test_a_private_model_exists_only_for_its_owner(self):
        path = hf_hub_download("hf-owner/secret", "config.json", token=OWNER)
        self.assertEqual(Path(path).read_bytes(), b'{"secret": 2}')
        for token in (OTHER, False):
            with self.assertRaises(RepositoryNotFoundError):
                model_info("hf-owner/secret", token=token)
            with self.assertRaises(RepositoryNotFoundError):
                hf_hub_download(
                    "hf-owner/secret", "config.json", token=token, cache_dir=WORK / f"cache-{token}"
                )

    def test_a_held_file_is_refused_with_the_reason(self):
        with self.assertRaises(HfHubHTTPError) as refused:
            hf_hub_download("hf-owner/held", "model.pkl", token=OWNER)
        self.assertEqual(refused.exception.response.status_code, 403)
        self.assertIn("held by the inspection gate", str(refused.exception))


class CutProxy:
    """A TCP proxy in front of the server that cuts the first download of `marker` after
    `cut_after` bytes of its answer, and records the requests it forwards."""

    def __init__(self, target: str, marker: bytes, cut_after: int):
        url = urllib.parse.urlsplit(target)
        self.target = (url.hostname, url.port)
        self.marker, self.cut_after = marker, cut_after
        self.cut = False
        self.requests: list[bytes] = []
        self.statuses: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket):
        server = socket.create_connection(self.target)
        state = {"cutting": False, "sent": 0}

        def upstream():
            while data := client.recv(65536):
                self.requests.append(data)
                if not self.cut and data.startswith(b"GET ") and self.marker in data:
                    state["cutting"] = True
                server.sendall(data)

        threading.Thread(target=upstream, daemon=True).start()
        try:
            while data := server.recv(65536):
                if data.startswith(b"HTTP/1.1 "):
                    self.statuses.append(data.split(b"\r\n", 1)[0])
                if state["cutting"]:
                    room = self.cut_after - state["sent"]
                    if len(data) >= room:
                        client.sendall(data[:room])
                        self.cut = True
                        break
                    state["sent"] += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            for end in (client, server):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()


class Resume(unittest.TestCase):
    def test_a_download_cut_midway_resumes_where_it_stopped(self):
        want = (Path(os.environ["MODELHUB_HF_BIG"])).read_bytes()
        proxy = CutProxy(os.environ["HF_ENDPOINT"], b"/resolve/main/big.bin", 12 * 1024 * 1024)
        api = HfApi(endpoint=proxy.url)
        path = api.hf_hub_download("hf-owner/big", "big.bin", token=False, cache_dir=WORK / "resume")
        self.assertTrue(proxy.cut, "the proxy cut the first download")
        self.assertEqual(Path(path).read_bytes(), want)
        ranges = [r for r in proxy.requests if b"/resolve/main/big.bin" in r and b"range: bytes=" in r.lower()]
        self.assertTrue(ranges, f"the client asked for the rest with a Range: {proxy.requests}")
        self.assertIn(b"HTTP/1.1 206 Partial Content", proxy.statuses)


class Transformers(unittest.TestCase):
    def test_auto_config_and_auto_tokenizer_load_from_the_hub(self):
        from transformers import AutoConfig, AutoTokenizer

        cache = WORK / "transformers"
        config = AutoConfig.from_pretrained("hf-owner/bert-tiny", cache_dir=cache)
        self.assertEqual((config.model_type, config.vocab_size), ("bert", 6))
        tokenizer = AutoTokenizer.from_pretrained("hf-owner/bert-tiny", cache_dir=cache)
        self.assertEqual(tokenizer("hello model hub")["input_ids"], [2, 3, 4])


class Cli(unittest.TestCase):
    def test_hf_download_fetches_a_file(self):
        hf = Path(sys.executable).with_name("hf")
        target = WORK / "cli"
        subprocess.run(
            [str(hf), "download", REPO, "config.json", "--local-dir", str(target)],
            check=True,
            capture_output=True,
            env={**os.environ, "HF_TOKEN": OWNER},
        )
        self.assertEqual((target / "config.json").read_bytes(), (EXPECTED / "config.json").read_bytes())


if __name__ == "__main__":
    unittest.main(verbosity=2)
