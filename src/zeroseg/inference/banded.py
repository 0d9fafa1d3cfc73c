"""Bilinear enlargement of class scores in bands of rows, so a large photo's labels need no full
(C, H, W) score tensor.

``bilinear_rows`` computes rows [y0, y1) of the bilinear (``align_corners=False``) enlargement of a
(C, h, w) map to (H, W), separably (rows, then columns); ``banded_argmax`` arg-maxes every band as it
is made, so peak memory is one band (``C x rows x W``), not the whole map. The same function
computes the full map when it is asked for, so labels and scores always agree.
"""

from __future__ import annotations

import torch
from torch import Tensor

BAND_ROWS = 256


def _taps(out_size: int, in_size: int, start: int, stop: int, device) -> tuple[Tensor, ...]:
    """Source indices and weights of output positions [start, stop): (i0, i1, w0, w1)."""
    scale = in_size / out_size
    src = (torch.arange(start, stop, device=device, dtype=torch.float64) + 0.5) * scale - 0.5
    src = src.clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    w1 = (src - i0).float()
    return i0, i1, 1 - w1, w1


def bilinear_rows(scores: Tensor, size: tuple[int, int], y0: int, y1: int) -> Tensor:
    """Rows [y0, y1) of ``scores`` (C, h, w) enlarged bilinearly to ``size`` -> (C, y1 - y0, W)."""
    _, h, w = scores.shape
    height, width = size
    r0, r1, a0, a1 = _taps(height, h, y0, y1, scores.device)
    rows = scores[:, r0] * a0[None, :, None] + scores[:, r1] * a1[None, :, None]  # (C, band, w)
    c0, c1, b0, b1 = _taps(width, w, 0, width, scores.device)
    return rows[:, :, c0] * b0 + rows[:, :, c1] * b1


def bilinear(scores: Tensor, size: tuple[int, int]) -> Tensor:
    """The whole (C, H, W) enlargement (``bilinear_rows`` over all rows)."""
    return bilinear_rows(scores, size, 0, size[0])


def banded_argmax(scores: Tensor, size: tuple[int, int], band: int = BAND_ROWS) -> Tensor:
    """(H, W) arg-max over classes of the enlarged scores, one band of rows at a time."""
    height = size[0]
    labels = torch.empty(size, dtype=torch.long, device=scores.device)
    for y0 in range(0, height, band):
        y1 = min(y0 + band, height)
        labels[y0:y1] = bilinear_rows(scores, size, y0, y1).argmax(0)
    return labels
