"""Times the Hugging Face client downloading from Model Hub (HF_ENDPOINT, HF_TOKEN set).

usage: hf_download.py file REPO PATH      # hf_hub_download of one file
       hf_download.py snapshot REPO       # snapshot_download of the whole revision
Prints the bytes per second (file bytes over wall time), into a fresh cache each time, under
MODELHUB_BENCH_CACHE (default: ./target).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from huggingface_hub import hf_hub_download, snapshot_download

mode, repo = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory(dir=os.environ.get("MODELHUB_BENCH_CACHE", "target")) as cache:
    began = time.perf_counter()
    if mode == "file":
        path = Path(hf_hub_download(repo, sys.argv[3], cache_dir=cache))
        size = path.stat().st_size
    else:
        folder = Path(snapshot_download(repo, cache_dir=cache))
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(size / (time.perf_counter() - began))
