"""``InferenceConfig``: how an image is segmented, every step that changes mIoU a field.

Kept apart from the ``Segmenter`` (and from torch) so that the protocols and the command line's
help can name settings without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from zeroseg.config import check


@dataclass(frozen=True)
class InferenceConfig:
    """How an image is segmented; every step that changes mIoU is a field here.

    Sizes left at ``None`` come from the model (``with_model_defaults``), so the command line and
    the Python API give the same labels: the short side and the window default to the model's
    input size, the stride to half the window. Benchmark protocols are named values of this class
    (``zeroseg.benchmark.protocols``).
    """

    short_side: int | None = None  # resize the short side to this (None: model's size; 0: keep)
    max_long_side: int = 2048  # cap for the long side after the short-side resize
    resize: Literal["antialias", "mmcv"] = "antialias"  # "mmcv": mmseg's cv2 bilinear on 8-bit
    mode: Literal["whole", "slide"] = "whole"  # one forward, or mmseg's sliding window
    window: int | None = None  # sliding-window size in pixels (None: the model's input size)
    stride: int | None = None  # sliding-window stride in pixels (None: half the window)
    logit_scale: float = 100.0  # CLIP's temperature (thresholds below assume it)
    bg_threshold: float = 0.95  # GroupViT background threshold (VOC 0.95, Context 0.05, COCO 0.35)
    top_k_classes: int = 0  # GroupViT's image-level top-k class restriction (0 = off)
    templates: str = "imagenet80"  # prompt template set: imagenet80, subset7, simple1
    pamr_steps: int = 0  # PAMR refinement of the scores at the input's size (0 = off; NACLIP: 10)
    pamr_dilations: tuple[int, ...] = (8, 16)  # PAMR's neighbour rings (NACLIP's setting)

    def __post_init__(self) -> None:
        positive = {"max_long_side": self.max_long_side, "logit_scale": self.logit_scale}
        for name, value in positive.items():
            check(value > 0, f"inference {name} must be positive, got {value}")
        for name in ("short_side", "window", "stride"):
            value = getattr(self, name)
            least = 0 if name == "short_side" else 1
            check(value is None or value >= least, f"inference {name} must be >= {least}")
        check(self.top_k_classes >= 0, "inference top_k_classes must be >= 0 (0 = off)")
        check(self.pamr_steps >= 0, "inference pamr_steps must be >= 0 (0 = off)")
        check(
            len(self.pamr_dilations) > 0 and all(d >= 1 for d in self.pamr_dilations),
            "inference pamr_dilations must be positive integers",
        )
        check(0 <= self.bg_threshold <= 1, "inference bg_threshold must be in [0, 1]")
        if self.window is not None and self.stride is not None:
            check(
                self.stride <= self.window,
                f"sliding window needs stride <= window, got {self.stride}/{self.window}",
            )

    def with_model_defaults(self, input_size: int) -> InferenceConfig:
        """Fill the sizes left at ``None`` from a model's square input size (pixels)."""
        short = input_size if self.short_side is None else self.short_side
        window = self.window or (short or input_size)
        return replace(
            self, short_side=short, window=window, stride=self.stride or window // 2 or 1
        )
