"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020), as NACLIP uses it.

Each pixel's class scores are replaced, ``steps`` times, by an average of its neighbours' scores,
weighted by how alike the neighbours look. The neighbours of a pixel are the 8 pixels of a 3x3
ring at each dilation d (``dilations``; replicate padding at the border). The affinity to a
neighbour is, per colour channel, -|I_centre - I_neighbour| / (1e-8 + 0.1 * sigma), where sigma is
the standard deviation (unbiased) of the 9 * len(dilations) taps of that channel around the pixel
(centre included), averaged over channels and soft-maxed over the neighbours. The weights are
computed once from the image and reused at every step.

Shapes: B batch, C class channels, P = 8 * len(dilations) neighbours, H x W pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

RING = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _taps(x: Tensor, dilations: Sequence[int], centre: bool) -> Tensor:
    """(B, K, H, W) -> (B, K, T, H, W): the ring (and the centre) at each dilation, raster order."""
    height, width = x.shape[-2:]
    offsets = RING if not centre else [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    taps = []
    for d in dilations:
        padded = F.pad(x, [d, d, d, d], mode="replicate")
        for dy, dx in offsets:
            y0, x0 = d + dy * d, d + dx * d
            taps.append(padded[..., y0 : y0 + height, x0 : x0 + width])
    return torch.stack(taps, dim=2)


def pamr_weights(image: Tensor, dilations: Sequence[int] = (8, 16)) -> Tensor:
    """(B, 3, H, W) image -> (B, 1, P, H, W) neighbour weights (each pixel's sum to 1)."""
    image = image.float()
    sigma = _taps(image, dilations, centre=True).std(dim=2, keepdim=True)  # (B, 3, 1, H, W)
    difference = (image.unsqueeze(2) - _taps(image, dilations, centre=False)).abs()
    affinity = (-difference / (1e-8 + 0.1 * sigma)).mean(dim=1, keepdim=True)
    return affinity.softmax(dim=2)


@torch.no_grad()
def pamr(
    image: Tensor, scores: Tensor, steps: int = 10, dilations: Sequence[int] = (8, 16)
) -> Tensor:
    """Refine (B, C, H, W) ``scores`` guided by the (B, 3, H, W) ``image`` (same size)."""
    if image.shape[-2:] != scores.shape[-2:]:
        raise ValueError(f"PAMR needs the image and scores at one size, got {image.shape[-2:]} "
                         f"and {scores.shape[-2:]}")  # fmt: skip
    weights = pamr_weights(image, dilations)
    refined = scores.float()
    for _ in range(steps):
        refined = (_taps(refined, dilations, centre=False) * weights).sum(dim=2)
    return refined.to(scores.dtype)
