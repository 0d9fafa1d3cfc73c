"""A two-node job on one machine: two torchrun launches (node ranks 0 and 1, gloo on localhost)
cache the teacher's views, pack the images with their views, then train from the pack."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("two_node_worker.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_nodes(*args: str) -> None:
    """Run ``args`` as two torchrun nodes of one process each; both must succeed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--nproc-per-node",
                "1",
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                *args,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=240)[0] for node in nodes]
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output[-3000:]


@pytest.mark.timeout(600)
def test_two_nodes_cache_pack_and_train_on_disjoint_data(tmp_path, image_folder):
    cache, shards, run = tmp_path / "cache", tmp_path / "shards", tmp_path / "run"
    two_nodes("-m", "zeroseg", "cache-teacher", "--data", str(image_folder), "--cache", str(cache),
              "--chunk-rows", "8", "--no-progress")  # fmt: skip
    two_nodes("-m", "zeroseg", "pack", "--data", str(image_folder), "--out", str(shards),
              "--views", "--encoding", "raw", "--shard-size", "4", "--no-progress")  # fmt: skip
    two_nodes(str(WORKER), str(shards), str(run), str(tmp_path))

    meta = json.loads((cache / "meta.json").read_text())
    manifest = json.loads((shards / "manifest.json").read_text())
    assert meta["complete"] and len(meta["files"]) == 4
    assert manifest["total"] == 32 and len(manifest["shards"]) == 8
    # the views packed by both nodes equal those the cache job computed for the same image
    import io
    import tarfile

    with tarfile.open(shards / "shard-000005.tar") as tar:  # written by node 1 (5 % 2)
        member = next(m for m in tar.getmembers() if m.name.endswith(".views.npy"))
        packed = np.load(io.BytesIO(tar.extractfile(member).read()))
    index = int(member.name.split(".")[0])
    cached = np.load(cache / f"views-{index // 8:05d}.npy")[index % 8]
    assert np.array_equal(packed, cached)

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP across the two nodes
    assert ranks[0]["steps"] == ranks[1]["steps"] == 3
    first, second = (set(r["keys"]) for r in ranks)
    assert first and second and not first & second  # each node read its own shards
    assert (run / "checkpoints" / "step_0000003.pt").is_file()
