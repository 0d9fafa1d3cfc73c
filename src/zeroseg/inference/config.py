"""``InferenceConfig``: how an image is segmented, every step that changes mIoU a field.

Kept apart from the ``Segmenter`` (and from torch) so that the protocols and the command line's
help can name settings without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from zeroseg.config import check

Precision = Literal["fp32", "fp16", "bf16"]  # ``InferenceConfig.precision``


@dataclass(frozen=True)
class InferenceConfig:
    """How an image is segmented; every step that changes mIoU is a field here.

    Sizes left at ``None`` come from the model (``with_model_defaults``), so the command line and
    the Python API give the same labels: the short side and the window default to the model's
    input size, the stride to half the window. Benchmark protocols are named values of this class
    (``zeroseg.benchmark.protocols``).

    The readout fields (``DenseCLIPSegmenter``; the student ignores them):

    - ``pos_resample``: "size" resamples the position embedding to the patch grid (bicubic, by
      size; MaskCLIP's code); "scale" as SCLIP, ClearCLIP and NACLIP do: bicubic with
      ``scale_factor=(n + 0.1) / 14`` per side, and only when the token count differs from 197.
    - ``remainder``, for a window whose sides are not multiples of the patch size: "replicate"
      pads bottom/right by replication and crops the scores; "zeros" pads the normalised pixels
      with zeros, centred, and crops (ClearCLIP); "drop" lets the patch embedding drop the
      remainder and stretches the logits to the window (SCLIP, NACLIP).
    - ``merge``: "scores" averages the windows' class scores (softmax per window, background
      threshold per window capped at the window's best score, PAMR on the scores guided by the
      input image); "logits" is the authors' order: the windows' cosine logits are averaged,
      enlarged to the input's size, refined by PAMR (guided by the resized image enlarged back),
      then the temperature, the softmax and the synonyms' max; the background threshold acts once,
      uncapped, on the full-size result (best score of all classes, background included, below
      ``bg_threshold`` -> background), after SCLIP's ``area_threshold``.

    For the student and the readouts alike:

    - ``precision``: the model's forward (the student's encoder and grouping head, a readout's
      image encoder) on CUDA under autocast at this dtype; on any other device fp32, said once in
      the log. Logits, softmax, thresholds and the class text embeddings stay float32. The student
      defaults to fp32 (our protocols); the readout protocols set fp16, as their authors run.
      ``zeroseg segment --set precision=bf16``, ``zeroseg evaluate ... precision=bf16``, or
      ``InferenceConfig(precision="bf16")`` / ``segmenter.with_config(precision="bf16")``.
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
    # The student only: "segments" (the paper, GroupViT): each pixel takes its segment's class;
    # "composed" (beyond the paper): each pixel's own embedding, the segment embeddings composed
    # through the soft assignment maps (``Segmenter.composed_pixel_scores``)
    pixel_readout: Literal["segments", "composed"] = "segments"
    # Readouts of the teacher (``--method maskclip|sclip|clearclip|naclip``) only; the protocols
    # choose them as each method's authors do (``zeroseg.benchmark.protocols``):
    pos_resample: Literal["size", "scale"] = "size"  # "scale": bicubic by (n + 0.1) / 14 factors
    remainder: Literal["replicate", "zeros", "drop"] = "replicate"  # window % patch: see below
    merge: Literal["scores", "logits"] = "scores"  # "logits": the authors' order of operations
    area_threshold: float = 0.0  # SCLIP's VOC21 area_thd (merge="logits"; 0 = off)
    clearclip_attention: Literal["qq", "qk"] = "qq"  # ClearCLIP: paper (q.q) or config (vanilla)
    # Student and readouts: the forward's autocast dtype on CUDA; a CPU runs fp32 always
    precision: Precision = "fp32"

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
        check(0 <= self.area_threshold < 1, "inference area_threshold must be in [0, 1)")
        check(
            self.area_threshold == 0 or self.merge == "logits",
            "inference area_threshold needs merge=logits (it acts on the full-size result)",
        )
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
