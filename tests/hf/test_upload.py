"""Publishing through the pinned huggingface_hub client (run by tests/api/hf.rs).

The server is empty but for the accounts `hf-writer` (MODELHUB_HF_WRITE_TOKEN: an API token with
READ and WRITE; MODELHUB_HF_READ_TOKEN: one with READ only; MODELHUB_HF_SESSION: its login
token, for GraphQL) and `hf-intruder` (MODELHUB_HF_INTRUDER_TOKEN, READ and WRITE). Everything
is uploaded with the client (`HF_HUB_DISABLE_XET=1`), then read back through the client and
through GraphQL.
"""

import hashlib
import json
import logging
import os
import subprocess
import sys
import unittest
import urllib.request
from pathlib import Path

import numpy as np
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from safetensors.numpy import save_file

ENDPOINT = os.environ["HF_ENDPOINT"]
WRITE = os.environ["MODELHUB_HF_WRITE_TOKEN"]
READ = os.environ["MODELHUB_HF_READ_TOKEN"]
SESSION = os.environ["MODELHUB_HF_SESSION"]
INTRUDER = os.environ["MODELHUB_HF_INTRUDER_TOKEN"]
FIXTURES = Path(os.environ["MODELHUB_HF_FIXTURES"])
WORK = Path(os.environ["MODELHUB_HF_WORK"])

api = HfApi(token=WRITE)


def graphql(query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"{ENDPOINT}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {SESSION}"},
    )
    with urllib.request.urlopen(request) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer
    return answer["data"]


VERSIONS = """query($name: String!) {
  modelByName(owner: "hf-writer", name: $name) {
    approvalStatus
    currentVersion { version commitId }
    versions { nodes { version changelog commitId files { nodes { path sha256 sizeBytes } } } }
  }
}"""


def versions(name: str) -> dict:
    return graphql(VERSIONS, {"name": name})["modelByName"]


def files_of(version: dict) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in version["files"]["nodes"]}


def hashes(folder: Path) -> dict[str, str]:
    """The files under `folder` (but the client's `.cache/` metadata) by path, with their SHA-256."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).parts[0] != ".cache"
    }


def transformers_folder(target: Path) -> Path:
    """bert_tiny's config and tokenizer, two safetensors shards and their index."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (target / name).write_bytes((FIXTURES / "bert_tiny" / name).read_bytes())
    shards = {
        "model-00001-of-00002.safetensors": {"embeddings.weight": np.arange(24, dtype=np.float32).reshape(6, 4)},
        "model-00002-of-00002.safetensors": {"classifier.weight": np.ones((2, 4), dtype=np.float32)},
    }
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, str(target / name))
        weight_map.update({tensor: name for tensor in tensors})
    total = sum(t.nbytes for tensors in shards.values() for t in tensors.values())
    (target / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    (target / "README.md").write_text(
        "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: fill-mask\ntags: [bert, tiny]\n---\n# bert-tiny\n"
    )
    (target / "notes").mkdir(exist_ok=True)
    (target / "notes" / "empty.txt").write_bytes(b"")
    return target


def tiny_gguf() -> bytes:
    """A GGUF v3 file: a llama architecture, its context length, a chat template and one 4x2
    f32 tensor."""
    import struct

    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kv = [
        (string("general.architecture"), 8, string("llama")),
        (string("llama.context_length"), 4, struct.pack("<I", 2048)),
        (string("tokenizer.chat_template"), 8, string("{{ messages }}")),
    ]
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv))
    for key, kind, value in kv:
        head += key + struct.pack("<I", kind) + value
    head += string("tok.weight") + struct.pack("<IQQIQ", 2, 4, 2, 0, 0)
    head += b"\0" * (-len(head) % 32)
    return head + struct.pack("<8f", *range(8))


class Publish(unittest.TestCase):
    def test_upload_folder_makes_a_version_graphql_and_transformers_read_back(self):
        folder = transformers_folder(WORK / "bert-folder")
        url = api.create_repo("hf-writer/bert-upload")
        self.assertEqual(url, f"{ENDPOINT}/hf-writer/bert-upload")
        # Created again: the client's exist_ok takes the refusal.
        api.create_repo("hf-writer/bert-upload", exist_ok=True)
        with self.assertRaises(HfHubHTTPError) as again:
            api.create_repo("hf-writer/bert-upload")
        self.assertEqual(again.exception.response.status_code, 409)

        commit = api.upload_folder(repo_id="hf-writer/bert-upload", folder_path=folder)
        model = versions("bert-upload")
        self.assertEqual(model["currentVersion"], {"version": "1.0.0", "commitId": commit.oid})
        self.assertEqual(files_of(model["versions"]["nodes"][0]), hashes(folder))
        self.assertEqual(model["versions"]["nodes"][0]["changelog"], "Upload folder using huggingface_hub")
        # The model takes what its card says, as one created through GraphQL does.
        card = graphql(
            'query { modelByName(owner: "hf-writer", name: "bert-upload") { framework license taskType tags } }', {}
        )["modelByName"]
        self.assertEqual(
            card, {"framework": "transformers", "license": "apache-2.0", "taskType": "fill-mask", "tags": ["bert", "tiny"]}
        )

        info = api.model_info("hf-writer/bert-upload")
        self.assertEqual(info.sha, commit.oid)
        self.assertEqual(sorted(s.rfilename for s in info.siblings), sorted(hashes(folder)))
        local = Path(snapshot_download("hf-writer/bert-upload", local_dir=WORK / "bert-back", token=WRITE))
        self.assertEqual(hashes(local), hashes(folder))

        from transformers import AutoConfig, AutoTokenizer

        cache = WORK / "transformers"
        config = AutoConfig.from_pretrained("hf-writer/bert-upload", cache_dir=cache, token=WRITE)
        self.assertEqual((config.model_type, config.vocab_size), ("bert", 6))
        tokenizer = AutoTokenizer.from_pretrained("hf-writer/bert-upload", cache_dir=cache, token=WRITE)
        self.assertEqual(tokenizer("hello model hub")["input_ids"], [2, 3, 4])

    def test_a_new_file_makes_the_next_version_and_unchanged_files_are_skipped(self):
        folder = WORK / "small"
        (folder / "sub").mkdir(parents=True)
        (folder / "config.json").write_text('{"layers": 2}')
        (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 40)
        api.create_repo("hf-writer/small")
        first = api.upload_folder(repo_id="hf-writer/small", folder_path=folder)

        (folder / "config.json").write_text('{"layers": 3}')
        with self.assertLogs("huggingface_hub.hf_api", level=logging.INFO) as logs:
            second = api.upload_folder(repo_id="hf-writer/small", folder_path=folder)
        self.assertIn("Removing 1 file(s) from commit that have not changed.", "\n".join(logs.output))

        third = api.upload_file(
            repo_id="hf-writer/small",
            path_or_fileobj=b"a new file",
            path_in_repo="extra/readme.txt",
            commit_message="v2.0.0: a readme",
            commit_description="explains the weights",
        )
        model = versions("small")
        by_version = {v["version"]: v for v in model["versions"]["nodes"]}
        self.assertEqual(sorted(by_version), ["1.0.0", "1.0.1", "v2.0.0"])
        self.assertEqual(
            [by_version[v]["commitId"] for v in ("1.0.0", "1.0.1", "v2.0.0")],
            [first.oid, second.oid, third.oid],
        )
        self.assertEqual(by_version["v2.0.0"]["changelog"], "v2.0.0: a readme\n\nexplains the weights")
        expected = hashes(folder)
        self.assertEqual(files_of(by_version["1.0.1"]), expected)
        expected["extra/readme.txt"] = hashlib.sha256(b"a new file").hexdigest()
        self.assertEqual(files_of(by_version["v2.0.0"]), expected)
        # Files not mentioned carried over: the weights are the first version's bytes.
        self.assertEqual(
            files_of(by_version["1.0.0"])["sub/weights.bin"], expected["sub/weights.bin"]
        )

        api.create_commit(
            repo_id="hf-writer/small",
            operations=[
                CommitOperationDelete(path_in_repo="extra/"),
                CommitOperationDelete(path_in_repo="config.json"),
                CommitOperationAdd(path_in_repo="config.yaml", path_or_fileobj=b"layers: 3\n"),
            ],
            commit_message="tidy",
        )
        self.assertEqual(
            sorted(api.list_repo_files("hf-writer/small")), ["config.yaml", "sub/weights.bin"]
        )
        self.assertEqual(versions("small")["currentVersion"]["version"], "v2.0.1")

    def test_a_large_file_goes_up_in_parts(self):
        big = WORK / "big.bin"
        with open(big, "wb") as out:
            block = bytes([0]) + bytes(range(1, 256)) * 4111
            while out.tell() < 100 * 1024 * 1024:
                out.write(block)
        size = big.stat().st_size
        sha256 = hashlib.sha256(big.read_bytes()).hexdigest()
        api.create_repo("hf-writer/big-upload")
        # The batch answer sends an object of this size in parts, with a completion call.
        request = urllib.request.Request(
            f"{ENDPOINT}/hf-writer/big-upload.git/info/lfs/objects/batch",
            data=json.dumps(
                {"operation": "upload", "transfers": ["basic", "multipart"], "objects": [{"oid": sha256, "size": size}]}
            ).encode(),
            headers={"content-type": "application/vnd.git-lfs+json", "authorization": f"Bearer {WRITE}"},
        )
        with urllib.request.urlopen(request) as response:
            batch = json.load(response)
        header = batch["objects"][0]["actions"]["upload"]["header"]
        chunk = int(header["chunk_size"])
        self.assertEqual(len([k for k in header if k.isdigit()]), -(-size // chunk))
        self.assertGreater(-(-size // chunk), 1)

        commit = api.upload_file(repo_id="hf-writer/big-upload", path_or_fileobj=big, path_in_repo="weights/big.bin")
        version = versions("big-upload")["versions"]["nodes"][0]
        self.assertEqual(version["commitId"], commit.oid)
        self.assertEqual(files_of(version), {"weights/big.bin": sha256})
        back = api.hf_hub_download("hf-writer/big-upload", "weights/big.bin", local_dir=WORK / "big-back")
        self.assertEqual(hashlib.sha256(Path(back).read_bytes()).hexdigest(), sha256)

    def test_a_pull_request_asks_for_publication(self):
        api.create_repo("hf-writer/to-publish")
        commit = api.upload_file(
            repo_id="hf-writer/to-publish",
            path_or_fileobj=b'{"ready": true}',
            path_in_repo="config.json",
            create_pr=True,
        )
        self.assertIsNotNone(commit.pr_url)
        self.assertEqual(versions("to-publish")["approvalStatus"], "PENDING")

    def test_model_info_describes_a_gguf_model(self):
        api.create_repo("hf-writer/tiny-gguf")
        api.upload_file(repo_id="hf-writer/tiny-gguf", path_or_fileobj=tiny_gguf(), path_in_repo="tiny.Q8_0.gguf")
        gguf = api.model_info("hf-writer/tiny-gguf").gguf
        self.assertEqual(
            gguf,
            {"total": 8, "architecture": "llama", "context_length": 2048, "chat_template": "{{ messages }}"},
        )

    def test_a_card_whose_front_matter_is_not_yaml_is_refused_before_upload(self):
        api.create_repo("hf-writer/bad-card")
        folder = WORK / "bad-card"
        folder.mkdir()
        (folder / "README.md").write_text("---\nlicense: [unclosed\n---\n# card\n")
        with self.assertRaises(ValueError) as refused:
            api.upload_folder(repo_id="hf-writer/bad-card", folder_path=folder)
        self.assertIn("Invalid metadata in README.md", str(refused.exception))
        self.assertIn("not YAML", str(refused.exception))
        self.assertIsNone(versions("bad-card")["currentVersion"])

    def test_a_held_file_is_stored_but_not_served(self):
        api.create_repo("hf-writer/held-upload")
        evil = (FIXTURES / "evil_reduce.pkl").read_bytes()
        api.upload_file(repo_id="hf-writer/held-upload", path_or_fileobj=evil, path_in_repo="model.pkl")
        with self.assertRaises(HfHubHTTPError) as refused:
            api.hf_hub_download("hf-writer/held-upload", "model.pkl", local_dir=WORK / "held")
        self.assertEqual(refused.exception.response.status_code, 403)
        self.assertIn("held by the inspection gate", str(refused.exception))


class Refusals(unittest.TestCase):
    def test_writes_need_the_write_scope_and_the_right_to_change_the_model(self):
        api.create_repo("hf-writer/guarded")
        api.upload_file(repo_id="hf-writer/guarded", path_or_fileobj=b"1", path_in_repo="a.txt")
        with self.assertRaises(HfHubHTTPError) as refused:
            HfApi(token=READ).upload_file(repo_id="hf-writer/guarded", path_or_fileobj=b"2", path_in_repo="a.txt")
        self.assertEqual(refused.exception.response.status_code, 403)
        self.assertIn("WRITE scope", str(refused.exception))
        # Other accounts and anonymous callers do not even see the private model.
        for token in (INTRUDER, False):
            with self.assertRaises(RepositoryNotFoundError):
                HfApi(token=token).upload_file(
                    repo_id="hf-writer/guarded", path_or_fileobj=b"2", path_in_repo="a.txt"
                )
        with self.assertRaises(HfHubHTTPError) as refused:
            HfApi(token=False).create_repo("hf-writer/anonymous")
        self.assertEqual(refused.exception.response.status_code, 401)
        with self.assertRaises(HfHubHTTPError) as refused:
            HfApi(token=INTRUDER).create_repo("hf-writer/not-yours")
        self.assertEqual(refused.exception.response.status_code, 403)
        self.assertEqual(versions("guarded")["currentVersion"]["version"], "1.0.0")


class Cli(unittest.TestCase):
    def test_hf_upload_creates_the_repository_and_a_version(self):
        folder = WORK / "cli-folder"
        (folder / "nested").mkdir(parents=True)
        (folder / "config.json").write_text('{"from": "cli"}')
        (folder / "nested" / "weights.bin").write_bytes(os.urandom(3000))
        hf = Path(sys.executable).with_name("hf")
        done = subprocess.run(
            [str(hf), "upload", "hf-writer/from-cli", str(folder), ".", "--commit-message", "v0.1.0 first"],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_TOKEN": WRITE},
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        model = versions("from-cli")
        self.assertEqual(model["currentVersion"]["version"], "v0.1.0")
        self.assertEqual(files_of(model["versions"]["nodes"][0]), hashes(folder))


if __name__ == "__main__":
    unittest.main(verbosity=2)
