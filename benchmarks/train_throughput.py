"""Training throughput: images per second of ``train_step`` (student forward/backward + optimiser).

Runs a preset's student and teacher (random weights) on random 224 or preset-size crops, with the
teacher online (``--views online``) or from cached features (``--views cached``: random tensors of
the cache's shape, which is what the loop reads from the memmap).

    python benchmarks/train_throughput.py --preset tiny --micro-batch 16 --steps 10
    python benchmarks/train_throughput.py --preset paper --micro-batch 2 --steps 2 --views cached
    python benchmarks/train_throughput.py --preset tiny --attention explicit --compile
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from zeroseg.config import load_config
from zeroseg.models.attention import set_fused_attention
from zeroseg.models.build import build_zeroseg
from zeroseg.models.teacher import build_teacher
from zeroseg.runtime.machine import describe
from zeroseg.training.optim import build_optimizer
from zeroseg.training.task import DistillationTask


def teacher_overrides(preset: str) -> list[str]:
    """Random teacher weights; the ``synthetic`` preset's teacher architecture is the shipped one's
    (the demo fills it in)."""
    if preset != "synthetic":
        return ["teacher.pretrained=none"]
    from zeroseg.synthetic.caption_clip import shipped_teacher

    meta = json.loads(shipped_teacher().with_suffix(".json").read_text())
    return [
        "teacher.pretrained=none",
        f"teacher.model_config={json.dumps(meta['model_config'])}",
        f"teacher.context_length={meta['context_length']}",
        f"seg_head.out_dim={meta['model_config']['embed_dim']}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--views", choices=["online", "cached"], default="online")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--attention", choices=["fused", "explicit"], default="fused",
                        help="scaled_dot_product_attention, or matmul-softmax-matmul")  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="torch.compile the student")
    args = parser.parse_args()
    device = torch.device(args.device)
    config = load_config(args.preset, teacher_overrides(args.preset))
    teacher = build_teacher(config.teacher).to(device)
    student = build_zeroseg(config.encoder, config.seg_head, config.decoder).to(device)
    set_fused_attention(student, args.attention == "fused")
    task = DistillationTask(student, teacher, config.loss, config.encoder.mask_ratio).train()
    optimizer = build_optimizer(student, 1e-4, 0.05, (0.9, 0.95))
    if args.compile:
        task.student.compile()  # as the loop does (train.compile)
    size = config.encoder.image_size
    images = torch.rand(args.micro_batch, 3, size, size, device=device)
    views = None
    if args.views == "cached":
        views = torch.randn(args.micro_batch, teacher.num_views, teacher.embed_dim, device=device)

    def step() -> None:
        with torch.autocast(device.type, torch.bfloat16, enabled=args.bf16):
            loss = task(images, views)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3 if args.compile else 1):  # warm-up (and compilation)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rate = args.steps * args.micro_batch / seconds
    print(f"machine: {describe(device)}")
    memory = ""
    if device.type == "cuda":
        memory = f", peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
    print(
        f"preset {args.preset}, {size}px, micro-batch {args.micro_batch}, teacher {args.views}, "
        f"attention {args.attention}, compile {args.compile}: "
        f"{rate:.2f} images/s ({seconds / args.steps:.2f} s/step){memory}"
    )


if __name__ == "__main__":
    main()
