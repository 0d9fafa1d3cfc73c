"""Two CPU processes with gloo under torchrun: DDP keeps the ranks' students identical."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("distributed_worker.py")


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.timeout(300)
def test_ranks_hold_the_same_student_after_a_step(tmp_path, image_folder):
    proc = _torchrun(str(WORKER), str(image_folder), str(tmp_path / "run"), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    initial = torch.load(
        sorted((tmp_path / "run" / "checkpoints").glob("*.pt"))[-1], weights_only=True
    )
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert all(torch.equal(rank0[k], initial["model"][k]) for k in rank0)


@pytest.mark.timeout(300)
def test_torchrun_module_entry_point(tmp_path, image_folder):
    proc = _torchrun("-m", "zeroseg", "train", "--data", str(image_folder), "--out",
                     str(tmp_path / "run"), "--steps", "2", "--no-progress",
                     "optim.micro_batch_size=4")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "step_0000002.pt").is_file()
