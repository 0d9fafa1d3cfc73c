"""Teacher-only baselines: the CLIP teacher classifies crops, and pixels inherit the crops' scores.

- ``GridCropSegmenter(teacher, grid=3)``: the image is cut into a g x g grid (the teacher's own view
  geometry); each cell is classified zero-shot and its pixels take the cell's class probabilities.
- ``SlidingCropSegmenter(teacher, window=0.5, stride=0.125)``: square windows (sizes as fractions of
  the image's short side) slide over the image; every pixel averages the probabilities of the
  windows covering it.

Both offer the ``Segmenter`` API (``set_vocabulary``, ``predict``) so the same evaluation code scores
them. Shapes: K' classes (+1 background-word column), C output channels, H x W pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zeroseg.inference.config import InferenceConfig
from zeroseg.inference.segmenter import WindowSegmenter
from zeroseg.models.teacher import CLIPTeacher, grid_boxes


class _CropSegmenter(WindowSegmenter):
    """Shared machinery: crops of the whole image classified in one batch, pixels averaged."""

    def __init__(
        self,
        teacher: CLIPTeacher,
        logit_scale: float = 100.0,
        templates: str = "imagenet80",
        bg_threshold: float = 0.95,
    ) -> None:
        config = InferenceConfig(
            short_side=0, mode="whole", logit_scale=logit_scale, bg_threshold=bg_threshold,
            templates=templates,
        )  # fmt: skip
        super().__init__(teacher, config)

    def boxes(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """Crops as (y0, y1, x0, x1)."""
        raise NotImplementedError

    def window_scores(self, window: Tensor) -> Tensor:
        """(1, 3, H, W) image -> (C, H, W): each pixel averages the crops covering it."""
        image = window[0]
        height, width = image.shape[-2:]
        boxes = self.boxes(height, width)
        embeddings = self.teacher.encode_crops(window, boxes)[0]  # (n, D)
        vocab = self._queries
        probs = vocab.probabilities(embeddings, self.config.logit_scale)  # (n, K')
        total = torch.zeros(probs.shape[1], height, width, device=image.device)
        count = torch.zeros(1, height, width, device=image.device)
        for (y0, y1, x0, x1), p in zip(boxes, probs):
            total[:, y0:y1, x0:x1] += p[:, None, None]
            count[:, y0:y1, x0:x1] += 1
        best = float(probs[:, : vocab.num_classes].max())
        return vocab.with_background(total / count.clamp(min=1), self.config.bg_threshold, best)


class GridCropSegmenter(_CropSegmenter):
    """Classify each cell of a ``grid`` x ``grid`` partition of the image."""

    def __init__(self, teacher: CLIPTeacher, grid: int = 3, **kwargs) -> None:
        super().__init__(teacher, **kwargs)
        self.grid = grid

    def boxes(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        return grid_boxes(height, width, (self.grid,))


class SlidingCropSegmenter(_CropSegmenter):
    """Average the classifications of square sliding windows covering each pixel.

    Args:
        window: window side as a fraction of the image's short side.
        stride: stride as a fraction of the image's short side.
    """

    def __init__(self, teacher: CLIPTeacher, window: float = 0.5, stride: float = 0.125, **kwargs):
        super().__init__(teacher, **kwargs)
        self.window, self.stride = window, stride

    def boxes(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        size = max(1, round(self.window * min(height, width)))
        step = max(1, round(self.stride * min(height, width)))
        ys = list(range(0, max(height - size, 0) + 1, step))
        xs = list(range(0, max(width - size, 0) + 1, step))
        if ys[-1] + size < height:
            ys.append(height - size)
        if xs[-1] + size < width:
            xs.append(width - size)
        return [(y, min(y + size, height), x, min(x + size, width)) for y in ys for x in xs]
