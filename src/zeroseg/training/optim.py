"""AdamW parameter groups and the learning-rate schedule (paper §5 with MAE's conventions).

lr = base_lr * batch_size / 256 (MAE's blr rule; 1.5e-4 * 4096 / 256 = 2.4e-3 in the paper),
linear warm-up, then half-cycle cosine decay to ``min_lr``, stepped per optimiser step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def effective_lr(base_lr: float, batch_size: int) -> float:
    """The absolute peak learning rate from the base rate and the effective global batch."""
    return base_lr * batch_size / 256


def no_decay_for_student(name: str, param: nn.Parameter) -> bool:
    """MAE's rule: no decay on biases, norms, tokens and position embeddings."""
    skip = param.ndim <= 1 or name.endswith(("pos_embed", "cls_token", "mask_token"))
    return skip or "group_tokens" in name


def param_groups(
    model: nn.Module,
    weight_decay: float,
    no_decay: Callable[[str, nn.Parameter], bool] = no_decay_for_student,
) -> list[dict]:
    """Two AdamW groups: decay on the trainable parameters ``no_decay`` does not exempt.

    Args:
        no_decay: (name, parameter) -> True for parameters trained without weight decay.
    """
    decay: list[nn.Parameter] = []
    exempt: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (exempt if no_decay(name, param) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": exempt, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float]
) -> torch.optim.Optimizer:
    """AdamW over ``param_groups``; ``fused`` on CUDA where available."""
    fused = next(model.parameters()).is_cuda
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, fused=fused)


def lr_at(
    step: int, peak_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warm-up then cosine."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
