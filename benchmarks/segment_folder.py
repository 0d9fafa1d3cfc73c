"""``zeroseg segment`` over a folder: images/s of the command line, a corrupt file skipped.

Writes ``--images`` synthetic scenes of the demo world (PNG, ``--size`` pixels) and one truncated
JPEG into a folder, runs the command exactly as a user would (a subprocess), and prints what it
printed plus the measured wall time. The model is a release folder or run (``zeroseg demo``
exports its student as ``zeroseg-demo/model``).

    python benchmarks/segment_folder.py --checkpoint zeroseg-demo/model --images 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from zeroseg.runtime.machine import describe
from zeroseg.synthetic import writers
from zeroseg.synthetic.scenes import CLASS_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="zeroseg-demo/model")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--classes", default=", ".join(CLASS_NAMES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        writers.write_training_images(folder, args.images, seed=7, size=args.size)
        (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
        command = [
            sys.executable, "-m", "zeroseg", "segment", str(folder), "--checkpoint",
            args.checkpoint, "--classes", args.classes, "--out", str(Path(tmp) / "seg"), "--coco",
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        summary = json.loads((Path(tmp) / "seg" / "summary.json").read_text())
    print(f"machine: {describe(torch.device('cpu'))}")
    print(f"exit status {done.returncode}; last lines of its output:")
    for line in (done.stdout + done.stderr).strip().splitlines()[-3:]:
        print(f"  {line}")
    print(
        f"{len(summary['images'])} images of {args.size}x{args.size} segmented, "
        f"{len(summary['skipped'])} skipped ({summary['skipped'][0]['path'].rsplit('/', 1)[-1]}); "
        f"{summary['images_per_second']} images/s in the loop, {seconds:.1f} s for the whole "
        "command (start-up and model loading included)"
    )


if __name__ == "__main__":
    main()
