"""``InferenceConfig.precision`` as an autocast context, shared by the student and the readouts.

On CUDA the model's forward runs under ``torch.autocast`` at fp16 or bf16; elsewhere (and at
``fp32``) it runs in float32. Only the forward: what follows it (cosine logits against the fp32
class embeddings, softmax, thresholds) is computed in float32 by the segmenters.
"""

from __future__ import annotations

import contextlib

import torch

from zeroseg.inference.config import Precision

DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``: None (plain fp32) for ``fp32`` or a
    device that is not CUDA."""
    if precision == "fp32" or device.type != "cuda":
        return None
    return DTYPES[precision]


def forward_autocast(
    precision: Precision, device: torch.device
) -> contextlib.AbstractContextManager[object]:
    """``torch.autocast`` on ``device`` at ``precision``'s dtype, or a context that does nothing
    where ``autocast_dtype`` says fp32."""
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def falls_back(precision: Precision, device: torch.device) -> bool:
    """Whether ``precision`` asks for half precision that ``device`` runs in fp32 instead."""
    return precision != "fp32" and autocast_dtype(precision, device) is None
