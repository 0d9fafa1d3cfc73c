"""Zero-shot segmentation throughput: images per second through ``Segmenter.predict``.

Uses the ``zeroseg`` evaluation protocol geometry (short side 448, 2048 cap, sliding window 448 with
stride 224) on VOC-sized random images (500 x 375). Models have random weights (throughput does not
depend on them): ``--preset tiny`` or ``--preset paper`` (ViT-B/16 student, ViT-L/14 text side).

    python benchmarks/inference_throughput.py --preset tiny --images 10
    python benchmarks/inference_throughput.py --preset paper --images 3
"""

from __future__ import annotations

import argparse
import time

import torch

from zeroseg.config import load_config
from zeroseg.inference.segmenter import InferenceConfig, Segmenter
from zeroseg.models.build import build_zeroseg
from zeroseg.models.teacher import build_teacher
from zeroseg.runtime.machine import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--mode", default="slide", choices=["slide", "whole"])
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    config = load_config(args.preset, ["teacher.pretrained=none"])
    model = build_zeroseg(config.encoder, config.seg_head, None).to(device).eval()
    teacher = build_teacher(config.teacher).to(device)
    inference = InferenceConfig(
        short_side=448, mode=args.mode, window=448, stride=224, templates="simple1"
    )
    segmenter = Segmenter(model, teacher, inference)
    segmenter.set_vocabulary([f"class {i}" for i in range(args.classes)], background=True)
    images = [torch.rand(3, 375, 500) for _ in range(args.images + 1)]
    segmenter.predict(images[0])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for image in images[1:]:
        segmenter.predict(image)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"machine: {describe(device)}")
    print(
        f"preset {args.preset}, mode {args.mode}, 500x375 -> short side 448: "
        f"{args.images / seconds:.3f} images/s ({seconds / args.images:.2f} s/image)"
    )


if __name__ == "__main__":
    with torch.no_grad():
        main()
