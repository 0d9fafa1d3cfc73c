"""Image resizing for inference: mmseg's keep-ratio rule and cv2's 8-bit bilinear, bit for bit.

mmseg's test pipeline resizes the 8-bit image with ``mmcv.imrescale``: the target size is
``int(side * scale + 0.5)`` with ``scale = min(short_target / short, long_cap / long)``, and the
pixels come from ``cv2.resize(..., INTER_LINEAR)`` on uint8, which interpolates bilinearly with
half-pixel centres (no antialiasing when shrinking) in 11-bit fixed point. ``cv2_bilinear``
re-derives that fixed-point arithmetic (OpenCV's vectorised uint8 path on x86), so the protocol
presets see the pixels the published numbers were measured on; a float bilinear resize instead
differs by one level on about 13 % of the pixels.

Shapes: (B, C, H, W) images.
"""

from __future__ import annotations

import torch
from torch import Tensor

_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
_COEF_SCALE = 1 << _COEF_BITS


def keep_ratio_size(height: int, width: int, short: int, long_cap: int) -> tuple[int, int]:
    """mmcv ``rescale_size``: (H, W) -> short side ``short``, long side at most ``long_cap``."""
    scale = min(short / min(height, width), long_cap / max(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def _taps(source: int, target: int, clamp_weights: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Source indices (i0, i1) and fixed-point weights (w0, w1) of each output position."""
    position = (torch.arange(target, dtype=torch.float64) + 0.5) * (source / target) - 0.5
    position = position.float()  # OpenCV computes the coordinate in float32
    start = position.floor()
    frac = position - start
    start = start.long()
    if clamp_weights:  # horizontal pass: taps outside the image collapse onto the edge pixel
        outside = (start < 0) | (start >= source - 1)
        frac = torch.where(outside, torch.zeros_like(frac), frac)
        start = start.clamp(0, source - 1)
    w0 = torch.round((1 - frac) * _COEF_SCALE).long()
    w1 = torch.round(frac * _COEF_SCALE).long()
    return start.clamp(0, source - 1), (start + 1).clamp(0, source - 1), w0, w1


def cv2_bilinear(levels: Tensor, size: tuple[int, int]) -> Tensor:
    """``cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)`` of 8-bit values.

    Args:
        levels: (B, C, H, W) integer-valued tensor in [0, 255] (any dtype).
        size: (h, w) target size.

    Returns:
        (B, C, h, w) float tensor of integer values in [0, 255].
    """
    height, width = levels.shape[-2:]
    device = levels.device  # the taps are computed on the CPU, as OpenCV's coordinates are
    x0, x1, a0, a1 = (t.to(device) for t in _taps(width, size[1], clamp_weights=True))
    y0, y1, b0, b1 = (t.to(device) for t in _taps(height, size[0], clamp_weights=False))
    image = levels.round().long()
    rows = image[..., x0] * a0 + image[..., x1] * a1  # (B, C, H, w), scaled by 2^11
    top, bottom = rows[..., y0, :] >> 4, rows[..., y1, :] >> 4
    b0, b1 = b0.view(-1, 1), b1.view(-1, 1)
    out = (((top * b0) >> 16) + ((bottom * b1) >> 16) + 2) >> 2
    return out.clamp(0, 255).to(levels.dtype if levels.is_floating_point() else torch.float32)
