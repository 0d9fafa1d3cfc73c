"""Kill -9 and resume: training, the teacher cache and packing, killed at random moments, end where
uninterrupted runs do.

- ``train``: the ``tiny`` preset on small synthetic images, once straight through and once as a
  series of ``zeroseg train --resume`` processes each killed with SIGKILL a random time (0-0.5 s)
  after it wrote its first checkpoint (some kills land inside a checkpoint write). Checkpoints and metrics every step. Compares the loss
  curve (metrics.jsonl) and the final weights: on CPU they must be equal.
- ``train-pack``: the same, reading a pack with views (shards of 3 images) through two DataLoader
  workers, so that most kills land mid-epoch of the shard stream.
- ``cache`` and ``pack``: ``zeroseg cache-teacher`` (chunks of 8 images) and ``zeroseg pack
  --views`` (shards of 8) over ImageNet-sized JPEGs (500x375), each process killed a random time
  after it finished its first chunk, then started again. Checks that no finished chunk or shard was
  written twice (its file is untouched after the restarts) and that every file equals the one an
  uninterrupted job writes, byte for byte.

    python benchmarks/kill_resume.py --kills 8
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
from PIL import Image

from zeroseg.runtime.machine import describe


def write_images(folder: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        array = rng.integers(0, 255, (72, 88, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"img_{i:03d}.png")
    return folder


def command(data: Path, out: Path, steps: int) -> list[str]:
    """``zeroseg train --resume`` on a folder of images, or on a pack (a folder with a manifest)."""
    packed = (data / "manifest.json").is_file()
    source = [f"data.shards={data}", "data.num_workers=2"] if packed else [f"data.root={data}"]
    return [
        sys.executable, "-m", "zeroseg", "train", "--preset", "tiny",
        "--out", str(out), "--steps", str(steps), "--resume", "--no-progress", *source,
        "train.checkpoint_every=1", "train.log_every=1", "train.keep_checkpoints=2",
    ]  # fmt: skip


def newest_checkpoint(run: Path) -> str | None:
    found = sorted((run / "checkpoints").glob("step_*.pt")) if run.is_dir() else []
    return found[-1].name if found else None


def start_then_kill(cmd: list[str], env: dict, marker, rng: random.Random) -> bool:
    """Start ``cmd``; once ``marker()`` (a checkpoint, a count of finished chunks) changes, wait a
    random 0-0.5 s and SIGKILL it. False when the process finished before the kill."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = marker()
    while proc.poll() is None and marker() == before:
        time.sleep(0.01)  # until this process has finished something of its own
    time.sleep(rng.uniform(0.0, 0.5))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def run_with_kills(data: Path, out: Path, steps: int, kills: int, seed: int) -> dict:
    rng = random.Random(seed)
    survived, in_write = 0, 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    while survived < kills:
        if not start_then_kill(command(data, out, steps), env, lambda: newest_checkpoint(out), rng):
            break  # it finished before the kill
        survived += 1
        in_write += bool(list((out / "checkpoints").glob(".*.tmp")))
    final = subprocess.run(command(data, out, steps), env=env, capture_output=True, text=True)
    if final.returncode != 0:
        raise SystemExit(f"the last resume failed: {final.stderr[-2000:]}")
    return {"kills": survived, "kills_during_a_checkpoint_write": in_write}


def write_photos(folder: Path, count: int) -> Path:
    """``count`` 500x375 JPEGs (ImageNet's typical size) of smooth random colour fields."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    for i in range(count):
        small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((500, 375), Image.BICUBIC).save(folder / f"p{i:04d}.jpg")
    return folder


def job_command(job: str, data: Path, out: Path) -> list[str]:
    common = [sys.executable, "-m", "zeroseg", job, "--data", str(data), "--no-progress"]
    if job == "cache-teacher":
        return [*common, "--cache", str(out), "--chunk-rows", "8"]
    return [*common, "--out", str(out), "--views", "--shard-size", "8"]


def finished_files(out: Path) -> dict[str, int]:
    """File name -> modification time (ns) of every finished chunk or shard's files."""
    stamps = {}
    for record in out.glob("*.done.json"):
        for name in json.loads(record.read_text())["files"]:
            stamps[name] = (out / name).stat().st_mtime_ns
    return stamps


def kill_job(job: str, data: Path, out: Path, kills: int, seed: int) -> dict:
    """Run ``job`` with SIGKILLs after random delays past its first finished chunk; then to the
    end. Returns the kills survived and the finished files written more than once."""
    rng = random.Random(seed)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    survived, in_write, rewritten, seen = 0, 0, set(), {}
    while survived < kills:
        finished = lambda: len(finished_files(out)) if out.is_dir() else 0  # noqa: E731
        if not start_then_kill(job_command(job, data, out), env, finished, rng):
            break  # it finished before the kill
        survived += 1
        in_write += bool(list(out.glob(".*.tmp")))
        now = finished_files(out)
        rewritten |= {n for n, t in now.items() if n in seen and seen[n] != t}
        seen.update(now)
    final = subprocess.run(job_command(job, data, out), env=env, capture_output=True, text=True)
    if final.returncode != 0:
        raise SystemExit(f"the last restart of {job} failed: {final.stderr[-2000:]}")
    rewritten |= {n for n, t in finished_files(out).items() if n in seen and seen[n] != t}
    return {
        "kills": survived,
        "kills_during_a_write": in_write,
        "rewritten": sorted(rewritten),
        "finished": len(seen),
        "temporary_files_left": len(list(out.glob(".*.tmp"))),
    }


def same_files(a: Path, b: Path) -> bool:
    """Every chunk or shard file of ``a`` equals ``b``'s, byte for byte, and none is missing."""
    names = sorted(finished_files(a))
    return names == sorted(finished_files(b)) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


def check_job(job: str, tmp: Path, kills: int, seed: int) -> bool:
    data = tmp / "photos"
    if not data.is_dir():
        write_photos(data, 1200)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    straight, killed = tmp / f"{job}-straight", tmp / f"{job}-killed"
    started = time.time()
    subprocess.run(job_command(job, data, straight), env=env, check=True, capture_output=True)
    seconds = time.time() - started
    stats = kill_job(job, data, killed, kills, seed)
    equal = same_files(straight, killed)
    print(f"{job}: {stats['kills']} SIGKILLs survived ({stats['kills_during_a_write']} during a "
          f"write; {seconds:.1f} s uninterrupted); {stats['finished']} files finished before a "
          f"kill, rewritten after it: {len(stats['rewritten'])}; temporary files left: "
          f"{stats['temporary_files_left']}; every file equal to the uninterrupted job's: {equal}")  # fmt: skip
    return equal and not stats["rewritten"] and not stats["temporary_files_left"]


def curve(run: Path) -> list[tuple[int, float]]:
    """(step, loss) per line of metrics.jsonl, in file order (a duplicate step would show)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


def weights(run: Path) -> dict:
    path = sorted((run / "checkpoints").glob("step_*.pt"))[-1]
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def check_training(tmp: Path, kills: int, steps: int, seed: int, packed: bool = False) -> bool:
    data = write_images(tmp / "images", 32) if not (tmp / "images").is_dir() else tmp / "images"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    job = "train"
    if packed:  # from a pack with views, read by two workers: mid-epoch resume of the stream
        subprocess.run([sys.executable, "-m", "zeroseg", "pack", "--data", str(data), "--out",
                        str(tmp / "pack"), "--views", "--shard-size", "3", "--no-progress"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        data, tmp, job = tmp / "pack", tmp / "from-pack", "train-pack"
        tmp.mkdir()
    subprocess.run(command(data, tmp / "straight", steps), env=env, check=True,
                   capture_output=True)  # fmt: skip
    stats = run_with_kills(data, tmp / "killed", steps, kills, seed)
    a, b = curve(tmp / "straight"), curve(tmp / "killed")
    wa, wb = weights(tmp / "straight"), weights(tmp / "killed")
    same_curve = a == b
    same_weights = wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    print(f"{job}: {stats['kills']} SIGKILLs survived ({stats['kills_during_a_checkpoint_write']} "
          f"during a checkpoint write); {steps} steps")  # fmt: skip
    print(f"{job}: loss curve equal to the uninterrupted run: {same_curve} ({len(b)} lines)")
    print(f"{job}: final weights equal: {same_weights}")
    return same_curve and same_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jobs", default="train,train-pack,cache-teacher,pack", help="comma-separated"
    )
    args = parser.parse_args()
    print(f"machine: {describe(torch.device('cpu'))}")
    passed = True
    with tempfile.TemporaryDirectory() as tmp:
        for job in args.jobs.split(","):
            if job in ("train", "train-pack"):
                packed = job == "train-pack"
                passed &= check_training(Path(tmp), args.kills, args.steps, args.seed, packed)
            else:
                passed &= check_job(job, Path(tmp), args.kills, args.seed)
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
