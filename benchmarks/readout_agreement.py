"""Agreement of ``--method M`` (protocol M) with a re-derivation of M's authors' full pipeline.

For each readout (maskclip, sclip, clearclip, naclip) on PASCAL VOC's protocol settings, one seeded
8-bit image at 224x224, 448x448 and 336x500 px, with and without PAMR (10 steps, dilations 8, 16):
the largest absolute difference of the per-pixel class scores and whether the labels are equal.
The reference is the one ``tests/test_dense_readouts.py`` checks against (SCLIP's
``clip_segmentor.py``, ClearCLIP's ``clearclip_segmentor.py``, NACLIP's ``naclip.py`` re-derived).
The teacher is open_clip ViT-B/16 with random weights (``teacher.pretrained=none``, seed 0); the
text side uses one template (the templates are checked elsewhere).

    OMP_NUM_THREADS=1 python benchmarks/readout_agreement.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_dense_readouts import agreement  # noqa: E402

from zeroseg.config import TeacherConfig, resolve_config  # noqa: E402
from zeroseg.models.teacher import build_teacher  # noqa: E402
from zeroseg.runtime.machine import describe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--dataset", default="voc")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    config = resolve_config(
        TeacherConfig, overrides=[f"model={args.model}", "pretrained=none", "seed=0"]
    )
    teacher = build_teacher(config).eval()
    print(f"{args.model} random weights, {args.dataset}; {describe(torch.device('cpu'))}")
    print("| readout | size | PAMR | max abs score difference | labels equal |")
    print("|---|---|---|---:|---|")
    for method in ("maskclip", "sclip", "clearclip", "naclip"):
        for size in ((224, 224), (448, 448), (336, 500)):
            for steps in (0, 10):
                diff, same, _ = agreement(teacher, method, args.dataset, size, steps)
                label = f"{size[0]}x{size[1]}"
                print(
                    f"| {method} | {label} | {steps or 'off'} | {diff:.1e} | {same} |", flush=True
                )


if __name__ == "__main__":
    main()
