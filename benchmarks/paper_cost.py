"""What the paper's run costs: FLOPs counted at paper size, projected to GPU-hours at a given MFU.

Counts, with PyTorch's FLOP counter on the meta device (shapes only, no arithmetic, seconds on any
machine), the FLOPs of one training image through the student step (forward and backward, 60 %
masking, reconstruction decoder, grouping head, losses) and of one image's 30 teacher views
(ViT-L/14 forwards), plus optionally the dense targets' extra forward. Then turns them into hours:
cache once (1.28 M images x views), train ``--epochs`` epochs, on a named GPU's dense bf16/fp16
peak at the model FLOP utilisation (MFU) given. The figures are projections from counted FLOPs and
an assumed MFU, not measurements; ``benchmarks/gpu_run.py`` measures the MFU on a GPU.

    python benchmarks/paper_cost.py --mfu 0.3 0.4 0.5
"""

from __future__ import annotations

import argparse

from zeroseg.training.cost import IMAGENET_TRAIN, PEAK_TFLOPS, gpu_hours, per_image_flops


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
            cache, train = gpu_hours(cache_total, peak, mfu), gpu_hours(train_total, peak, mfu)
            dense = gpu_hours(dense_total, peak, mfu)
            print(f"| {gpu} | {mfu:.2f} | {cache:.1f} | {train:.1f} | {cache + train:.1f} | "
                  f"{dense:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
