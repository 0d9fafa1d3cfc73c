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

from collections.abc import Sequence

import torch
from torch import Tensor

from zeroseg.errors import ZeroSegError
from zeroseg.inference import SegmentationResult
from zeroseg.teacher import CLIPTeacher, grid_boxes
from zeroseg.text_queries import TextQueries


class _CropSegmenter:
    """Shared machinery: vocabulary, batched crop classification, background rule."""

    def __init__(
        self,
        teacher: CLIPTeacher,
        logit_scale: float = 100.0,
        templates: str = "imagenet80",
        bg_threshold: float = 0.95,
    ) -> None:
        self.teacher = teacher.eval()
        self.logit_scale = logit_scale
        self.templates = templates
        self.bg_threshold = bg_threshold
        self.vocabulary: TextQueries | None = None
        self._text_cache: dict = {}

    def set_vocabulary(
        self,
        class_names: Sequence[str | Sequence[str]],
        background: bool = False,
        background_words: Sequence[str] = (),
    ) -> None:
        """Same contract as ``Segmenter.set_vocabulary``."""
        self.vocabulary = TextQueries.build(
            self.teacher,
            class_names,
            self.templates,
            background,
            background_words,
            self._text_cache,
        )

    def boxes(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, image: Tensor) -> SegmentationResult:
        """Segment one (3, H, W) [0,1] image."""
        if self.vocabulary is None:
            raise ZeroSegError("no classes set: call set_vocabulary first")
        device = self.teacher.pixel_mean.device
        image = image.to(device).float()
        height, width = image.shape[-2:]
        boxes = self.boxes(height, width)
        crops = [image[:, y0:y1, x0:x1].unsqueeze(0) for y0, y1, x0, x1 in boxes]
        embeddings = torch.cat([self.teacher.encode_images(c) for c in crops])  # (n, D)
        probs = self.vocabulary.probabilities(embeddings, self.logit_scale)  # (n, K')
        total = torch.zeros(probs.shape[1], height, width, device=device)
        count = torch.zeros(1, height, width, device=device)
        for (y0, y1, x0, x1), p in zip(boxes, probs):
            total[:, y0:y1, x0:x1] += p[:, None, None]
            count[:, y0:y1, x0:x1] += 1
        pixel = total / count.clamp(min=1)
        best = float(probs[:, : self.vocabulary.num_classes].max())
        scores = self.vocabulary.with_background(pixel, self.bg_threshold, best)
        return SegmentationResult(scores.argmax(0), scores, list(self.vocabulary.names))


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
