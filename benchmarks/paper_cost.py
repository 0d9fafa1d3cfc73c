"""What the paper's run costs: FLOPs counted at paper size, projected to GPU-hours at a given MFU.

Counts, with PyTorch's FLOP counter on the meta device (shapes only, no arithmetic, seconds on any
machine), the FLOPs of one training image through the student step (forward and backward, 60 %
masking, reconstruction decoder, grouping head, losses) and of one image's 30 teacher views
(ViT-L/14 forwards), plus optionally the dense targets' extra forward. Then turns them into hours:
cache once (1.28 M images x views), train ``--epochs`` epochs, on a named GPU's dense bf16/fp16
peak at the model FLOP utilisation (MFU) given. The figures are projections from counted FLOPs and
an assumed MFU, not measurements; ``benchmarks/train_throughput.py`` measures the MFU on a GPU.

    python benchmarks/paper_cost.py --mfu 0.3 0.4 0.5
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from zeroseg.config import load_config
from zeroseg.models.build import build_zeroseg
from zeroseg.models.teacher import build_teacher
from zeroseg.training.task import DistillationTask

IMAGENET_TRAIN = 1_281_167
PEAK_TFLOPS = {  # dense tensor-core peak, bf16 (fp16 on V100), from the vendors' data sheets
    "V100 SXM2": 125.0,
    "A100 SXM": 312.0,
    "H100 SXM": 989.0,
}


def count(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def per_image_flops(batch: int = 2, dense_size: int = 0) -> dict[str, float]:
    """FLOPs per image: student step, the 30 teacher views, and the dense targets' forward."""
    overrides = ["teacher.pretrained=none"]
    if dense_size:
        overrides += ["loss.dense_weight=1", f"teacher.dense_size={dense_size}"]
    config = load_config("paper", overrides)
    teacher = build_teacher(config.teacher).to("meta")
    student = build_zeroseg(config.encoder, config.seg_head, config.decoder).to("meta")
    task = DistillationTask(student, teacher, config.loss, config.encoder.mask_ratio)
    images = torch.rand(batch, 3, 224, 224, device="meta")
    views = torch.rand(batch, teacher.num_views, teacher.embed_dim, device="meta")
    grid = (224 // 16, 224 // 16)
    dense = torch.rand(batch, grid[0] * grid[1], teacher.embed_dim, device="meta")

    def step():
        out = task(images, views, dense if dense_size else None)
        out["loss"].backward()

    flops = {
        "student_step": count(step) / batch,
        "teacher_views": count(lambda: teacher.encode_views(images)) / batch,
    }
    if dense_size:
        flops["dense_targets"] = count(lambda: teacher.encode_dense(images, grid)) / batch
    return flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mfu", type=float, nargs="+", default=[0.3, 0.4, 0.5])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--images", type=int, default=IMAGENET_TRAIN)
    parser.add_argument("--dense-size", type=int, default=224, help="0: no dense targets row")
    args = parser.parse_args()
    flops = per_image_flops(dense_size=args.dense_size)
    for name, value in flops.items():
        print(f"{name}: {value / 1e9:.1f} GFLOP per image")
    train_total = flops["student_step"] * args.images * args.epochs
    cache_total = flops["teacher_views"] * args.images
    dense_total = flops.get("dense_targets", 0.0) * args.images
    print(f"\ntotals: train {train_total:.3g} FLOP ({args.epochs} epochs x {args.images} images), "
          f"view cache {cache_total:.3g} FLOP, dense targets {dense_total:.3g} FLOP")  # fmt: skip
    print("\n| GPU | MFU | cache (h) | train (h) | total (GPU-hours) | + dense targets (h) |")
    print("|---|---|---|---|---|---|")
    for gpu, peak in PEAK_TFLOPS.items():
        for mfu in args.mfu:
            rate = peak * 1e12 * mfu
            cache, train = cache_total / rate / 3600, train_total / rate / 3600
            dense = dense_total / rate / 3600
            print(f"| {gpu} | {mfu:.2f} | {cache:.1f} | {train:.1f} | {cache + train:.1f} | "
                  f"{dense:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
