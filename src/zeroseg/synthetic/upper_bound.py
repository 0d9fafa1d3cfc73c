"""An upper bound for the synthetic world: the same student trained with ground-truth masks.

The student's architecture and inference path are unchanged; only the training signal differs.
Per image, the composed soft assignment maps A (patches x segments) and the segments' class
probabilities P = softmax(logit_scale * cos(g, t)) over the world's class-name embeddings t give
per-patch class probabilities A @ P, upsampled to pixels and trained with the negative
log-likelihood of the ground-truth label. Labels exist for every training scene here only because
the world is synthetic; nothing of this reaches the unsupervised method.

Shapes: B batch, N patches, S segments, K classes, D embedding size, H x W pixels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from zeroseg.benchmark.datasets import VOCSegmentation
from zeroseg.config import ExperimentConfig, to_dict
from zeroseg.inference.text_queries import TextQueries
from zeroseg.models.build import build_zeroseg
from zeroseg.models.grouping import compose_assignments
from zeroseg.models.teacher import build_teacher
from zeroseg.runtime.progress import progress as progress_bar
from zeroseg.training import checkpoint as ckpt
from zeroseg.training.optim import build_optimizer, effective_lr, lr_at

logger = logging.getLogger(__name__)


def pixel_class_log_probs(
    model, images: torch.Tensor, text: torch.Tensor, scale: float
) -> torch.Tensor:
    """(B, 3, H, W) images -> (B, K, H, W) log class probabilities through the segments."""
    out, (gh, gw) = model.encode_segments(images)
    maps = compose_assignments(out.soft_assignments)  # (B, N, S)
    segments = F.normalize(out.segment_embeddings, dim=-1)
    probs = (scale * segments @ text.T).softmax(-1)  # (B, S, K)
    patch = (maps @ probs).transpose(1, 2).reshape(images.shape[0], -1, gh, gw).contiguous()
    pixels = F.interpolate(patch, images.shape[-2:], mode="bilinear", align_corners=False)
    return pixels.clamp(min=1e-6).log()


def train_upper_bound(
    config: ExperimentConfig, labelled_root: Path, run_dir: Path, progress: bool = True
) -> Path:
    """Train the student with ground-truth masks; returns the checkpoint (same format as ``train``)."""
    torch.manual_seed(config.train.seed)
    dataset = VOCSegmentation(labelled_root, split="val")
    teacher = build_teacher(config.teacher)
    text = TextQueries.build(teacher, list(dataset.class_names), "simple1").text
    model = build_zeroseg(config.encoder, config.seg_head, None)
    lr = effective_lr(config.optim.base_lr, config.optim.batch_size)
    optimizer = build_optimizer(model, lr, config.optim.weight_decay, config.optim.betas)
    loader = DataLoader(dataset, batch_size=config.optim.batch_size, shuffle=True, drop_last=True)
    steps, warmup = config.train.steps, max(1, config.train.steps // 20)
    batches = _forever(loader)
    model.train()
    for step in progress_bar(range(steps), desc="upper bound", enabled=progress):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, lr, warmup, steps)
        images, labels, _ = next(batches)
        log_probs = pixel_class_log_probs(model, images, text, 100.0)
        loss = F.nll_loss(log_probs, labels, ignore_index=dataset.ignore_index)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    state = {"step": steps, "config": to_dict(config), "model": model.state_dict()}
    return ckpt.save_checkpoint(run_dir, state)


def _forever(loader):
    while True:
        yield from loader
