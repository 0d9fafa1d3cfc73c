"""How far each protocol fix moves the pixels and labels: resizing and GroupViT's top-5 step.

1. Resizing 8-bit images to short side 448 (mmseg's pipeline: mmcv's size rounding, cv2 bilinear):
   ours (``resize="mmcv"``) against OpenCV, and what the earlier choices differ by (float
   bilinear rounded to 8 bits; antialiased bilinear, the ``antialias`` option), with the time.
2. Labels of a random tiny student under the ``zeroseg`` protocol with and without GroupViT's
   top-5 restriction (the earlier ``zeroseg`` protocol skipped it), for 6, 21 and 60 classes.

    python benchmarks/protocol_fidelity.py            # needs opencv-python-headless (dev extra)
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from zeroseg.benchmark.protocols import protocol_config
from zeroseg.config import load_config
from zeroseg.inference.resize import keep_ratio_size
from zeroseg.inference.segmenter import InferenceConfig, Segmenter, resize_short_side
from zeroseg.models.build import build_zeroseg
from zeroseg.models.teacher import build_teacher
from zeroseg.runtime.machine import describe


def resize_rows(sizes, images_per_size: int = 3) -> None:
    import cv2

    print("| input | output | ours vs cv2: pixels differing | float bilinear vs cv2 | "
          "antialiased vs cv2: max / mean | ours ms | antialias ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for h, w in sizes:
        target = keep_ratio_size(h, w, 448, 2048)
        stats = {"ours": [], "float": [], "aa_max": [], "aa_mean": [], "t_ours": [], "t_aa": []}
        for _ in range(images_per_size):
            noise = rng.random((h // 8 + 1, w // 8 + 1, 3))  # smooth, photo-like content
            smooth = torch.from_numpy(noise).permute(2, 0, 1)[None].float()
            smooth = F.interpolate(smooth, (h, w), mode="bicubic", align_corners=False)
            image = (smooth.clamp(0, 1) * 255).round()
            expected = cv2.resize(
                image[0].permute(1, 2, 0).numpy().astype(np.uint8), target[::-1],
                interpolation=cv2.INTER_LINEAR,
            )  # fmt: skip
            expected = torch.from_numpy(expected).permute(2, 0, 1)[None].float()
            start = time.perf_counter()
            ours = resize_short_side(image / 255, InferenceConfig(short_side=448, resize="mmcv"))
            stats["t_ours"].append(time.perf_counter() - start)
            start = time.perf_counter()
            smooth_aa = resize_short_side(image / 255, InferenceConfig(short_side=448))
            stats["t_aa"].append(time.perf_counter() - start)
            plain = F.interpolate(image, target, mode="bilinear", align_corners=False).round()
            stats["ours"].append(float(((ours * 255).round() != expected).float().mean()))
            stats["float"].append(float((plain != expected).float().mean()))
            diff = ((smooth_aa * 255).round() - expected).abs()
            stats["aa_max"].append(float(diff.max()))
            stats["aa_mean"].append(float(diff.mean()))
        print(
            f"| {h}x{w} | {target[0]}x{target[1]} | {np.mean(stats['ours']):.4%} | "
            f"{np.mean(stats['float']):.2%} | {max(stats['aa_max']):.0f} / "
            f"{np.mean(stats['aa_mean']):.2f} | {1e3 * np.median(stats['t_ours']):.1f} | "
            f"{1e3 * np.median(stats['t_aa']):.1f} |"
        )


def top_k_rows(class_counts, images: int = 4) -> None:
    config = load_config("tiny")
    torch.manual_seed(0)
    model = build_zeroseg(config.encoder, config.seg_head, None).eval()
    teacher = build_teacher(config.teacher)
    protocol, _ = protocol_config("zeroseg", "voc")
    protocol = replace(protocol, short_side=64, window=64, stride=32)
    print("| classes | background threshold | pixels labelled differently without the top-5 step |")
    print("|---|---|---|")
    for count in class_counts:
        for threshold in (0.95, 0.35, 0.05):
            with_top5 = Segmenter(model, teacher, replace(protocol, bg_threshold=threshold))
            without = with_top5.with_config(top_k_classes=0)
            names = [f"class {i}" for i in range(count)]
            for segmenter in (with_top5, without):
                segmenter.set_vocabulary(names, background=True)
            changed = []
            for seed in range(images):
                image = torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(seed))
                a, b = with_top5.predict(image).labels, without.predict(image).labels
                changed.append(float((a != b).float().mean()))
            print(f"| {count} | {threshold} | {np.mean(changed):.1%} |")


def main() -> None:
    print(f"machine: {describe(torch.device('cpu'))}")
    resize_rows([(375, 500), (480, 640), (1000, 1333), (427, 640)])
    print()
    with torch.no_grad():
        top_k_rows([6, 21, 60])


if __name__ == "__main__":
    main()
