"""Peak memory of ``zeroseg segment`` on a large photo (the process's maximum resident set size).

Writes a ``--megapixels`` JPEG (4:3) and runs the command on it in a fresh process with ``--classes``
N names, then prints the child's peak RSS. Labels are made one band of rows at a time
(``zeroseg.inference.banded``), so the full (C, H, W) score tensor (C x H x W x 4 bytes) is never held.

    python benchmarks/segment_memory.py --checkpoint zeroseg-demo/model --megapixels 12 --classes 20
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zeroseg.runtime.machine import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="zeroseg-demo/model")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    args = parser.parse_args()
    width = int((args.megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        rng = np.random.default_rng(0)
        small = rng.integers(0, 255, (height // 50, width // 50, 3), dtype=np.uint8)
        Image.fromarray(small).resize((width, height), Image.BILINEAR).save(photo, quality=90)
        classes = ", ".join(f"class {i}" for i in range(args.classes))
        command = [
            args.python, "-m", "zeroseg", "segment", str(photo), "--checkpoint", args.checkpoint,
            "--classes", classes, "--out", str(Path(tmp) / "out"), "--no-progress",
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    full_scores_mb = args.classes * width * height * 4 / 2**20
    print(f"machine: {describe(torch.device('cpu'))}")
    print(f"{width}x{height} ({width * height / 1e6:.1f} MP) JPEG, {args.classes} classes: exit "
          f"{done.returncode}, {seconds:.1f} s, peak RSS {peak_mb:.0f} MiB (a full score tensor "
          f"would be {full_scores_mb:.0f} MiB)")  # fmt: skip
    if done.returncode:
        print(done.stderr[-2000:])


if __name__ == "__main__":
    main()
