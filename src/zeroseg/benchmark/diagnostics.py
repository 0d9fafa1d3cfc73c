"""Grouping diagnostics that separate a collapsed grouping from bad labels.

For each image with ground truth: how many of the S segments own pixels, how pure they are (share
of a segment's pixels in its majority ground-truth class), and the "oracle" labelling that gives each
segment its majority class, i.e. the best mIoU the grouping allows. A grouping that collapsed to one
segment per image scores the same with oracle labels as with text labels (synthetic-world notes).

Shapes: H x W pixels; segment ids and labels are int64 (H, W).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


def oracle_labels(segment_ids: Tensor, labels: Tensor, ignore_index: int = 255) -> Tensor:
    """(H, W) prediction giving each segment the majority ground-truth class of its pixels."""
    out = torch.full_like(labels, ignore_index)
    for s in segment_ids.unique():
        member = segment_ids == s
        valid = labels[member & (labels != ignore_index)]
        if valid.numel():
            out[member] = torch.bincount(valid).argmax()
    return out


@dataclass
class GroupingStats:
    """Running averages over images of segments used, purity and matched-view usage."""

    images: int = 0
    segments_used: float = 0.0
    purity: float = 0.0
    segments_histogram: dict[int, int] = field(default_factory=dict)

    def update(self, segment_ids: Tensor, labels: Tensor, ignore_index: int = 255) -> None:
        """Add one image: (H, W) segment ids and (H, W) ground-truth labels."""
        valid = labels != ignore_index
        used = segment_ids[valid].unique()
        purities, sizes = [], []
        for s in used:
            member = labels[(segment_ids == s) & valid]
            purities.append(torch.bincount(member).max().item() / member.numel())
            sizes.append(member.numel())
        total = sum(sizes)
        purity = sum(p * n for p, n in zip(purities, sizes)) / max(total, 1)
        self.images += 1
        self.segments_used += (len(used) - self.segments_used) / self.images
        self.purity += (purity - self.purity) / self.images
        self.segments_histogram[len(used)] = self.segments_histogram.get(len(used), 0) + 1

    def summary(self) -> dict:
        return {
            "segments_used_per_image": round(self.segments_used, 3),
            "segment_purity": round(self.purity, 4),
            "segments_used_histogram": dict(sorted(self.segments_histogram.items())),
        }
