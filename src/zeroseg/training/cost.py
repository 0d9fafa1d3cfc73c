"""What a training run costs in FLOPs, counted on the meta device, and GPU-hours from an MFU.

PyTorch's FLOP counter on the meta device (shapes only, no arithmetic, seconds on any machine)
counts one training image through the student step (forward and backward, masking, decoder, head,
losses), one image's teacher views and, optionally, the dense targets' forward.
``benchmarks/paper_cost.py`` projects them to hours; ``benchmarks/gpu_run.py`` measures the MFU.
"""

from __future__ import annotations

from collections.abc import Callable

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


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs PyTorch's counter sees while ``fn`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def per_image_flops(
    batch: int = 2, dense_size: int = 0, preset: str = "paper", overrides: tuple[str, ...] = ()
) -> dict[str, float]:
    """FLOPs per image: ``student_step``, ``teacher_views`` and (with ``dense_size``)
    ``dense_targets``, for a preset at its own image size, teacher weights random."""
    extra = ["teacher.pretrained=none", *overrides]
    if dense_size:
        extra += ["loss.dense_weight=1", f"teacher.dense_size={dense_size}"]
    config = load_config(preset, extra)
    teacher = build_teacher(config.teacher).to("meta")
    student = build_zeroseg(config.encoder, config.seg_head, config.decoder).to("meta")
    task = DistillationTask(student, teacher, config.loss, config.encoder.mask_ratio)
    size, patch = config.encoder.image_size, config.encoder.patch_size
    images = torch.rand(batch, 3, size, size, device="meta")
    views = torch.rand(batch, teacher.num_views, teacher.embed_dim, device="meta")
    grid = (size // patch, size // patch)
    dense = torch.rand(batch, grid[0] * grid[1], teacher.embed_dim, device="meta")

    def step() -> None:
        out = task(images, views, dense if dense_size else None)
        out["loss"].backward()

    flops = {
        "student_step": count_flops(step) / batch,
        "teacher_views": count_flops(lambda: teacher.encode_views(images)) / batch,
    }
    if dense_size:
        flops["dense_targets"] = count_flops(lambda: teacher.encode_dense(images, grid)) / batch
    return flops


def gpu_hours(flops: float, peak_tflops: float, mfu: float) -> float:
    """Hours of one GPU with a dense peak of ``peak_tflops`` at ``mfu`` for ``flops``."""
    return flops / (peak_tflops * 1e12 * mfu) / 3600
