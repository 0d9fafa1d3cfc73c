"""Kill -9 and resume: a tiny training run killed at random moments ends where an uninterrupted one does.

Trains the ``tiny`` preset on a folder of small synthetic images twice: once straight through, and
once as a series of ``zeroseg train --resume`` processes each killed with SIGKILL after a random
delay (some kills land inside a checkpoint write). Checkpoints every step, metrics every step. Then
compares the loss curve (metrics.jsonl) and the final weights. On CPU they must be equal.

    python benchmarks/kill_resume.py --kills 6 --steps 24
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _machine import describe
from PIL import Image


def write_images(folder: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        array = rng.integers(0, 255, (72, 88, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"img_{i:03d}.png")
    return folder


def command(data: Path, out: Path, steps: int) -> list[str]:
    return [
        sys.executable, "-m", "zeroseg", "train", "--preset", "tiny", "--data", str(data),
        "--out", str(out), "--steps", str(steps), "--resume", "--no-progress",
        "train.checkpoint_every=1", "train.log_every=1", "train.keep_checkpoints=2",
    ]  # fmt: skip


def run_with_kills(data: Path, out: Path, steps: int, kills: int, seed: int) -> dict:
    rng = random.Random(seed)
    survived, in_write = 0, 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    while survived < kills:
        proc = subprocess.Popen(command(data, out, steps), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(4.0, 9.0))  # start-up is ~4 s on this machine
        if proc.poll() is not None:
            break  # it finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        survived += 1
        in_write += bool(list((out / "checkpoints").glob(".*.tmp")))
    final = subprocess.run(command(data, out, steps), env=env, capture_output=True, text=True)
    if final.returncode != 0:
        raise SystemExit(f"the last resume failed: {final.stderr[-2000:]}")
    return {"kills": survived, "kills_during_a_checkpoint_write": in_write}


def curve(run: Path) -> list[tuple[int, float]]:
    """(step, loss) per line of metrics.jsonl, in file order (a duplicate step would show)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


def weights(run: Path) -> dict:
    path = sorted((run / "checkpoints").glob("step_*.pt"))[-1]
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_images(Path(tmp) / "images", 32)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        subprocess.run(command(data, Path(tmp) / "straight", args.steps), env=env, check=True,
                       capture_output=True)  # fmt: skip
        stats = run_with_kills(data, Path(tmp) / "killed", args.steps, args.kills, args.seed)
        a, b = curve(Path(tmp) / "straight"), curve(Path(tmp) / "killed")
        wa, wb = weights(Path(tmp) / "straight"), weights(Path(tmp) / "killed")
        same_curve = a == b
        same_weights = wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    print(f"machine: {describe(torch.device('cpu'))}")
    print(f"{stats['kills']} SIGKILLs survived ({stats['kills_during_a_checkpoint_write']} during a "
          f"checkpoint write); {args.steps} steps")  # fmt: skip
    print(f"loss curve equal to the uninterrupted run: {same_curve} ({len(b)} lines)")
    print(f"final weights equal: {same_weights}")
    if not (same_curve and same_weights):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
