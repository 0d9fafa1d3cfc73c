"""Dataset-level segmentation metrics with mmseg's definitions, from one confusion matrix.

Per class c, summed over the whole dataset (never averaged per image):
intersection = pixels labelled c and predicted c; union = labelled c + predicted c - intersection.
IoU_c = intersection / union, Acc_c = intersection / labelled c. Pixels whose label is the ignore
index (255) are dropped, whatever their prediction. A class with union 0 (absent from both the
labels and the predictions) has IoU NaN and is left out of the mean (``nanmean``); a class only
predicted counts with IoU 0. aAcc = all intersections / all labelled pixels.
mIoU and mAcc are the NaN-skipping means. The summary reports percentages.

Shapes: K classes, H x W pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from zeroseg.errors import ZeroSegError


class ConfusionMatrix:
    """Accumulates a (K, K) matrix: rows are labels, columns are predictions.

    Args:
        num_classes: K.
        ignore_index: label value that is not scored.
        device: where the matrix starts; it follows the device of the predictions given to
            ``update`` (so an all-reduce runs where the predictions are).
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None
    ) -> None:
        if num_classes < 1:
            raise ZeroSegError(f"need at least one class, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: Tensor, label: Tensor) -> None:
        """Add one image (or a batch) of predictions.

        Args:
            pred: (H, W) or (B, H, W) integer class indices in [0, K).
            label: same shape; values in [0, K) or ``ignore_index``.
        """
        if pred.shape != label.shape:
            raise ZeroSegError(
                f"prediction shape {tuple(pred.shape)} != label shape {tuple(label.shape)}"
            )
        label = label.to(pred.device).long()
        keep = label != self.ignore_index
        pred, label = pred[keep].long(), label[keep]
        k = self.num_classes
        for what, values in (("label", label), ("prediction", pred)):
            if values.numel() and (values.min() < 0 or values.max() >= k):
                bad = values[(values < 0) | (values >= k)][0].item()
                raise ZeroSegError(
                    f"{what} value {bad} is outside 0..{k - 1} (and not {self.ignore_index})"
                )
        counts = torch.bincount(label * k + pred, minlength=k * k).view(k, k)
        self.matrix = self.matrix.to(counts.device) + counts

    def all_reduce(self) -> None:
        """Sum the matrix over processes (no-op unless torch.distributed is initialised).

        The matrix lives on the device of the predictions it was given, so with NCCL the
        predictions (and so the matrix) must be on the process's CUDA device.
        """
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix)

    def reset(self) -> None:
        self.matrix = torch.zeros_like(self.matrix)

    def iou(self) -> Tensor:
        """(K,) float64 IoU per class, NaN where the union is 0."""
        m = self.matrix.double().cpu()
        intersection = m.diag()
        union = m.sum(0) + m.sum(1) - intersection
        return intersection / union

    def accuracy(self) -> Tensor:
        """(K,) float64 accuracy per class, NaN for classes absent from the labels."""
        m = self.matrix.double().cpu()
        return m.diag() / m.sum(1)

    def summary(self, class_names: Sequence[str]) -> dict:
        """mmseg's metrics in percent.

        Returns:
            ``miou``, ``macc``, ``aacc`` (floats, NaN when nothing was scored), ``per_class`` and
            ``per_class_acc`` (class name -> percent, NaN for skipped classes), ``num_pixels``
            (labelled pixels scored).
        """
        if len(class_names) != self.num_classes:
            raise ZeroSegError(f"{len(class_names)} class names for {self.num_classes} classes")
        iou, acc = self.iou(), self.accuracy()
        m = self.matrix.double().cpu()
        labelled = float(m.sum())
        aacc = float(m.diag().sum()) / labelled if labelled else math.nan
        return {
            "miou": _nanmean(iou) * 100,
            "macc": _nanmean(acc) * 100,
            "aacc": aacc * 100,
            "per_class": {name: float(v) * 100 for name, v in zip(class_names, iou)},
            "per_class_acc": {name: float(v) * 100 for name, v in zip(class_names, acc)},
            "num_pixels": int(labelled),
        }


def _nanmean(values: Tensor) -> float:
    valid = values[~values.isnan()]
    return float(valid.mean()) if valid.numel() else math.nan
