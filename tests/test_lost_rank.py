"""A lost rank: two CPU processes (gloo) under torchrun, one killed with SIGKILL mid-run (a node
failure, an OOM kill); ``--max-restarts 1`` restarts the job, which resumes from the last
checkpoint and ends with the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

STEPS = 16


def _command(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "--max-restarts", "1", "-m", "zeroseg", "train", "--data", str(data), "--out",
            str(out), "--steps", str(STEPS), "--resume", "--no-progress",
            "train.checkpoint_every=2", "train.keep_checkpoints=0",
            "optim.micro_batch_size=4"]  # fmt: skip


def _rank_process(parent: int, rank: int) -> int | None:
    """The pid of the worker of ``rank`` below torchrun's process ``parent``, if it runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def _final_weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / f"step_{STEPS:07d}.pt", weights_only=True)["model"]


@pytest.mark.timeout(240)
def test_a_killed_rank_is_restarted_and_the_run_ends_as_an_uninterrupted_one(
    tmp_path, image_folder
):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = subprocess.run(_command(image_folder, tmp_path / "straight"), env=env,
                              capture_output=True, text=True, timeout=200)  # fmt: skip
    assert straight.returncode == 0, straight.stderr[-3000:]
    out = tmp_path / "killed"
    log = (tmp_path / "torchrun.log").open("w")
    job = subprocess.Popen(_command(image_folder, out), env=env, stdout=log, stderr=log)
    killed = None
    deadline = time.monotonic() + 150
    while job.poll() is None and time.monotonic() < deadline:
        if killed is None and (out / "checkpoints" / "step_0000004.pt").is_file():
            killed = _rank_process(job.pid, rank=1)
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    if job.poll() is None:
        job.kill()
    log.close()
    text = (tmp_path / "torchrun.log").read_text()
    assert job.returncode == 0, text[-3000:]
    assert killed is not None, "the job ended before a rank could be killed"
    assert "Signals.SIGKILL" in text or "SIGKILL" in text or "-9" in text  # torchrun saw it
    assert "resumed from" in text  # the restarted job picked up a checkpoint
    a, b = _final_weights(tmp_path / "straight"), _final_weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
