"""Zero-shot segmentation with a trained student (paper §6, GroupViT's inference recipe).

Per window: the student's soft assignment maps of the two grouping stages are composed
(A = A1 @ A2, patches x segments), upsampled bilinearly to pixels and arg-maxed, so each pixel belongs
to one segment. Each segment token g is compared with the class text embeddings t (from the teacher's
text encoder, prompt-ensembled): P = softmax(logit_scale * cos(g, t)) over all queries, and a class
scores the max over its synonyms. Optional GroupViT steps, each a named ``InferenceConfig`` field:
image-level top-k class restriction (``top_k_classes``) and the background threshold: pixels whose
best class score is below min(bg_threshold, best score in the window) become background.
Whole-image or sliding-window mode; window scores are averaged and enlarged bilinearly to the input
size one band of rows at a time (``zeroseg.inference.banded``), so a large photo never holds its full score
tensor, then optionally refined by PAMR (``pamr_steps``; guided by the input image) before the
arg-max.

Shapes: S segments, Q text queries, K classes, C output channels (K, or 1 + K with background),
H x W pixels, h x w patch grid.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from zeroseg.config import ExperimentConfig, TeacherConfig
from zeroseg.errors import ZeroSegError
from zeroseg.inference.banded import banded_argmax, bilinear
from zeroseg.inference.config import InferenceConfig
from zeroseg.inference.pamr import pamr
from zeroseg.inference.precision import falls_back, forward_autocast
from zeroseg.inference.resize import cv2_bilinear, keep_ratio_size
from zeroseg.inference.text_queries import TextQueries
from zeroseg.models.grouping import compose_assignments
from zeroseg.models.seg_head import SegHeadOutput
from zeroseg.models.teacher import CLIPTeacher, build_teacher, check_student_matches
from zeroseg.models.zeroseg import ZeroSeg
from zeroseg.runtime.distributed import select_device

logger = logging.getLogger(__name__)


@dataclass
class SegmentationResult:
    """One image's segmentation.

    Attributes:
        labels: (H, W) int64 class index per pixel, at the input's size.
        model_scores: (C, h, w) float class scores at the resolution the model worked at.
        class_names: display names aligned with label indices ("background" first if used).
        segment_ids: (H, W) int64 segment index per pixel (whole mode only, else None).
        segment_classes: (S,) class index of each segment (whole mode only, else None).
        refined_scores: (C, H, W) scores after PAMR, when it ran (it works at the input's size).
    """

    labels: Tensor
    model_scores: Tensor
    class_names: list[str]
    segment_ids: Tensor | None = None
    segment_classes: Tensor | None = None
    refined_scores: Tensor | None = None

    @property
    def scores(self) -> Tensor:
        """(C, H, W) class scores at the input's size, made on access (the labels never need the
        whole tensor: for a 12 MP photo and 20 classes it is about 1 GB)."""
        if self.refined_scores is not None:
            return self.refined_scores
        height, width = self.labels.shape
        return bilinear(self.model_scores, (height, width))


def resize_short_side(image: Tensor, config: InferenceConfig) -> Tensor:
    """(1, 3, H, W) [0,1] -> short side ``config.short_side``, long side capped at ``max_long_side``.

    The target size follows mmcv's keep-ratio rounding (``resize.keep_ratio_size``); 0 keeps the
    size. ``resize="antialias"``: bilinear with an antialiasing filter when shrinking (PIL-like).
    ``resize="mmcv"``: what mmseg's test pipeline does to an 8-bit image (cv2's bilinear, bit for
    bit, ``resize.cv2_bilinear``).
    """
    height, width = image.shape[-2:]
    if not config.short_side:
        return image
    size = keep_ratio_size(height, width, config.short_side, config.max_long_side)
    if size == (height, width):
        return image
    if config.resize == "mmcv":
        return cv2_bilinear(image * 255, size) / 255
    resized = F.interpolate(image, size, mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp(0, 1)


RANGE_SLACK = 1e-3  # resampled [0, 1] images may overshoot by rounding


def check_image(image: object) -> None:
    """Refuse, in one line, what ``predict`` cannot segment: not a tensor, not float (a uint8
    0..255 image included), not (3, H, W), no pixels, NaN or infinite values, values outside
    [0, 1] (a mean/std-normalised image)."""
    if not isinstance(image, Tensor):
        raise ZeroSegError(
            f"predict expects a (3, H, W) float torch.Tensor in [0, 1], got {type(image).__name__} "
            "(zeroseg.data.images.load_image reads a file)"
        )
    if not image.is_floating_point():
        hint = " divided by 255: image.float() / 255" if image.dtype == torch.uint8 else ""
        raise ZeroSegError(
            f"predict expects a float image in [0, 1], got dtype {image.dtype}; pass it as float"
            f"{hint}"
        )
    if image.ndim != 3 or image.shape[0] != 3:
        raise ZeroSegError(f"expected a (3, H, W) image tensor, got shape {tuple(image.shape)}")
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ZeroSegError(f"the image has no pixels (shape {tuple(image.shape)})")
    finite = torch.isfinite(image)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ZeroSegError(f"the image holds {bad} NaN or infinite values; expected [0, 1]")
    low, high = float(image.min()), float(image.max())
    if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        raise ZeroSegError(
            f"the image's values span [{low:.3g}, {high:.3g}]; predict expects [0, 1] (an 8-bit "
            "image divided by 255, not normalised by a mean and std)"
        )


def slide_windows(
    height: int, width: int, window: int, stride: int
) -> list[tuple[int, int, int, int]]:
    """mmseg's sliding grid as (y0, y1, x0, x1); the last row/column is shifted to end at the edge."""
    rows = max(height - window + stride - 1, 0) // stride + 1
    cols = max(width - window + stride - 1, 0) // stride + 1
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y1, x1 = min(r * stride + window, height), min(c * stride + window, width)
            boxes.append((max(y1 - window, 0), y1, max(x1 - window, 0), x1))
    return boxes


def slide_average(
    image: Tensor, window: int | None, stride: int | None, per_window: Callable[[Tensor], Tensor]
) -> Tensor:
    """mmseg's slide inference: ``per_window`` on each window of mmseg's grid, averaged where
    windows overlap.

    Args:
        image: (1, 3, H, W) the resized image.
        window, stride: in pixels (set by ``InferenceConfig.with_model_defaults``).
        per_window: (1, 3, h, w) window -> (K, h, w) values at its pixels.

    Returns:
        (K, H, W).
    """
    _, _, height, width = image.shape
    assert window is not None and stride is not None  # set by with_model_defaults
    total, count = None, torch.zeros(1, height, width, device=image.device)
    for y0, y1, x0, x1 in slide_windows(height, width, window, stride):
        values = per_window(image[:, :, y0:y1, x0:x1])
        if total is None:
            total = torch.zeros(values.shape[0], height, width, device=image.device)
        total[:, y0:y1, x0:x1] += values
        count[:, y0:y1, x0:x1] += 1
    assert total is not None  # slide_windows gives at least one window
    return total / count


class WindowSegmenter:
    """Shared inference skeleton: vocabulary, resize, whole/sliding windows, result assembly.

    Subclasses implement ``window_outputs`` (or only ``window_scores``) for one window.

    Args:
        teacher: the CLIP teacher whose text encoder embeds the class names.
        config: inference settings; sizes left at ``None`` come from ``input_size``.
        input_size: the model's square input size (the teacher's when None).
    """

    def __init__(
        self,
        teacher: CLIPTeacher,
        config: InferenceConfig | None = None,
        input_size: int | None = None,
    ) -> None:
        self.teacher = teacher.eval()
        self.input_size = input_size or teacher.image_size
        self.config = (config or InferenceConfig()).with_model_defaults(self.input_size)
        self.vocabulary: TextQueries | None = None
        self._text_cache: dict = {}
        self._warned_precision = False  # the fp32 fallback of ``_autocast`` was logged

    @property
    def device(self) -> torch.device:
        return self.teacher.pixel_mean.device

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        """The model's forward at ``config.precision``: autocast on CUDA, fp32 elsewhere (said
        once per segmenter). Only the forward: scores are computed in float32 after it."""
        precision = self.config.precision
        if falls_back(precision, self.device) and not self._warned_precision:
            logger.info("precision=%s needs CUDA: running fp32 on %s", precision, self.device)
            self._warned_precision = True
        return forward_autocast(precision, self.device)

    @property
    def _queries(self) -> TextQueries:
        """The vocabulary of ``set_vocabulary`` (a one-line error before it was called)."""
        if self.vocabulary is None:
            raise ZeroSegError("no classes set: call set_vocabulary first")
        return self.vocabulary

    def with_config(self, **changes):
        """A copy sharing models, vocabulary and text cache, with some settings changed."""
        other = copy.copy(self)
        other.config = replace(self.config, **changes).with_model_defaults(self.input_size)
        return other

    def set_vocabulary(
        self,
        class_names: Sequence[str | Sequence[str]],
        background: bool = False,
        background_words: Sequence[str] = (),
    ) -> None:
        """Set the classes (a sequence entry = synonyms, first is the display name).

        With ``background`` the output index 0 is background (GroupViT threshold, plus the best of
        ``background_words`` as text queries if given) and class i gets index i + 1.
        """
        self.vocabulary = TextQueries.build(
            self.teacher, class_names, self.config.templates, background, background_words,
            self._text_cache,
        )  # fmt: skip

    @torch.no_grad()
    def predict(self, image: Tensor) -> SegmentationResult:
        """Segment one (3, H, W) float image in [0, 1] with the current vocabulary.

        Anything else is a one-line ``ZeroSegError`` (``check_image``): a uint8 image of 0..255 is
        refused rather than guessed at (pass ``image.float() / 255``, or ``load_image(path)``).
        """
        vocabulary = self._queries
        check_image(image)
        height, width = image.shape[-2:]
        resized = resize_short_side(image.to(self.device).float().unsqueeze(0), self.config)
        if self.config.mode == "whole":
            scores, segments, segment_classes = self.window_outputs(resized)
        else:
            scores, segments, segment_classes = self._slide(resized), None, None
        size = (height, width)
        refined = None
        if self.config.pamr_steps:  # PAMR works at the input's size, guided by the input
            guide = image.to(scores.device).float().unsqueeze(0)
            refined = pamr(
                guide, bilinear(scores, size)[None], self.config.pamr_steps,
                self.config.pamr_dilations,
            )[0]  # fmt: skip
            labels = refined.argmax(0)
        else:
            labels = banded_argmax(scores, size)  # one band of full-size scores at a time
        if segments is not None:
            segments = F.interpolate(segments[None, None].float(), size, mode="nearest")[
                0, 0
            ].long()
        names = list(vocabulary.names)
        return SegmentationResult(labels, scores, names, segments, segment_classes, refined)

    def _slide(self, image: Tensor) -> Tensor:
        """Average window scores over mmseg's sliding grid -> (C, H, W)."""
        return slide_average(image, self.config.window, self.config.stride, self.window_scores)

    def window_outputs(self, window: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(1, 3, h, w) window -> (C, h, w) scores, and segment ids / classes where they exist."""
        return self.window_scores(window), None, None

    def window_scores(self, window: Tensor) -> Tensor:
        """(1, 3, h, w) window -> (C, h, w) class scores (background channel first if set)."""
        return self.window_outputs(window)[0]


class Segmenter(WindowSegmenter):
    """A trained student plus the teacher's text encoder: image in, label map out.

    Args:
        model: the ZeroSeg student (decoder not needed).
        teacher: the CLIP teacher the student was distilled from (its text side labels segments).
        config: inference settings.
    """

    checkpoint_path: Path | None = None  # the file or release from_checkpoint/from_pretrained read
    experiment_config: ExperimentConfig | None = None  # the config the student was trained with

    def __init__(self, model: ZeroSeg, teacher: CLIPTeacher, config: InferenceConfig | None = None):
        super().__init__(teacher, config, input_size=model.input_size)
        self.model = model.eval()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        config: InferenceConfig | None = None,
        device: str | torch.device | None = None,
    ) -> Segmenter:
        """Build from a checkpoint file, a run directory or a release (``from_pretrained``).

        The teacher is rebuilt from the saved config; only the student's weights are read (a resume
        file's optimiser state is memory-mapped, never loaded). ``config`` sizes left at ``None``
        come from the student's input size (``InferenceConfig``).
        """
        from zeroseg.inference.release import names_a_release
        from zeroseg.training.checkpoint import load_student

        if names_a_release(path):
            return cls.from_pretrained(path, config, device)
        model, exp, ckpt_path = load_student(path)
        return cls._assemble(model, exp.teacher, exp, ckpt_path, config, device)

    @classmethod
    def from_pretrained(
        cls,
        name: str | Path,
        config: InferenceConfig | None = None,
        device: str | torch.device | None = None,
        teacher_pretrained: str | None = None,
    ) -> Segmenter:
        """Build from a release folder or Hub id ``user/name`` (``zeroseg export`` writes them).

        ``config`` defaults to the inference settings the release recorded; ``teacher_pretrained``
        says where the teacher's weights are when they moved since the export.
        """
        from zeroseg.inference.release import load_release

        release = load_release(name, teacher_pretrained)
        config = config or release_inference(release.inference)
        return cls._assemble(
            release.model, release.teacher, release.experiment, release.path, config, device
        )

    @classmethod
    def _assemble(
        cls,
        model: ZeroSeg,
        teacher_config: TeacherConfig,
        experiment: ExperimentConfig,
        source: Path,
        config: InferenceConfig | None,
        device: str | torch.device | None,
    ) -> Segmenter:
        teacher = build_teacher(teacher_config)
        check_student_matches(teacher, experiment.seg_head.out_dim, str(source))
        device = select_device(device)
        segmenter = cls(model.to(device), teacher.to(device), config)
        segmenter.checkpoint_path = source
        segmenter.experiment_config = experiment
        return segmenter

    def window_outputs(self, window: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Scores of one (1, 3, h, w) window -> (C, h, w), segment ids (h, w), segment classes (S,).

        ``pixel_readout="segments"`` (GroupViT's and the paper's): each pixel takes its segment's
        class scores. ``"composed"``: each pixel is scored by its own embedding, the segment
        embeddings composed through the soft assignment maps (``composed_pixel_scores``).
        """
        segment_ids, out, maps, enlarge = self._segments(window)
        probs, image_best = self.segment_class_scores(out)  # (S, K'), best class probability
        vocab = self._queries
        if self.config.pixel_readout == "composed":
            pixel = self.composed_pixel_scores(out, maps, enlarge)  # (K', h, w)
            image_best = pixel[: vocab.num_classes].max()
        else:
            onehot = F.one_hot(segment_ids, probs.shape[0]).permute(2, 0, 1).float()  # (S, h, w)
            pixel = torch.einsum("shw,sk->khw", onehot, probs)  # (K', h, w)
        scores = vocab.with_background(pixel, self.config.bg_threshold, float(image_best))
        segment_classes = probs[:, : vocab.num_classes].argmax(1) + int(vocab.background)
        return scores, segment_ids, segment_classes

    def segment_map(self, window: Tensor) -> tuple[Tensor, SegHeadOutput]:
        """(1, 3, h, w) window -> (h, w) index of each pixel's segment, and the head's output (in
        float32, whatever ``config.precision`` the forward ran at)."""
        segment_ids, out, _, _ = self._segments(window)
        return segment_ids, out

    def _segments(
        self, window: Tensor
    ) -> tuple[Tensor, SegHeadOutput, Tensor, Callable[[Tensor], Tensor]]:
        """``segment_map``'s outputs, the (N, S) soft assignment maps composed over the stages,
        and a function that enlarges (N, C) token-grid values to the window's (C, h, w) (bilinear,
        as the assignment maps)."""
        padded, (h, w) = pad_to_multiple(window, self.model.encoder.patch_size)
        with self._autocast():  # encoder and head at ``precision``; what follows in float32
            out, grid = self.model.encode_segments(padded)
        out = out.float()

        def enlarge(values: Tensor) -> Tensor:  # (N, C) -> (C, h, w)
            grid_values = values.transpose(0, 1).reshape(-1, *grid).unsqueeze(0)
            size = padded.shape[-2:]
            return F.interpolate(grid_values, size, mode="bilinear", align_corners=False)[
                0, :, :h, :w
            ]

        maps = compose_assignments(out.soft_assignments)[0]  # (N, S)
        return enlarge(maps).argmax(0), out, maps, enlarge

    def composed_pixel_scores(
        self, out: SegHeadOutput, maps: Tensor, enlarge: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """(K', h, w) class probabilities of each pixel's composed embedding (beyond the paper).

        At each token n, p_n = sum_s A[n, s] g_s / |g_s| (the soft assignment maps A composed over
        the stages, as the dense training terms compose them); its cosine logits against the text
        queries are enlarged to the window, then the temperature, softmax and synonyms' max, and
        GroupViT's top-k restriction (by the whole image's embedding) when ``top_k_classes`` is set.
        ``maps``: (N, S) those composed maps (``_segments``).
        """
        vocab, cfg = self._queries, self.config
        pixels = maps @ F.normalize(out.segment_embeddings[0], dim=-1)  # (N, D)
        logits = enlarge(vocab.logits(pixels, cfg.logit_scale)).permute(1, 2, 0)  # (h, w, Q)
        probs = vocab.class_max(logits.softmax(-1))
        if cfg.top_k_classes > 0:
            image_logits = vocab.logits(out.global_embedding[0], cfg.logit_scale)
            probs = probs * vocab.top_k_restricted(logits, image_logits, cfg.top_k_classes)
        return probs.permute(2, 0, 1)

    def segment_class_scores(self, out: SegHeadOutput) -> tuple[Tensor, Tensor]:
        """Class probabilities of the segments of one window.

        Returns:
            (S, K') probabilities (K' = K classes, plus one background-word column if any) and the
            window's best class probability (for the auto-capped background threshold).
        """
        vocab, cfg = self._queries, self.config
        segments = out.segment_embeddings[0]  # (S, D)
        probs = vocab.probabilities(segments, cfg.logit_scale)
        if cfg.top_k_classes > 0:
            logits = vocab.logits(segments, cfg.logit_scale)
            image_logits = vocab.logits(out.global_embedding[0], cfg.logit_scale)
            probs = probs * vocab.top_k_restricted(logits, image_logits, cfg.top_k_classes)
        return probs, probs[:, : vocab.num_classes].max()


def release_inference(values: dict) -> InferenceConfig:
    """An ``InferenceConfig`` from a release's recorded defaults (unknown keys are an error)."""
    from zeroseg.config import from_dict

    return from_dict(dict(values), InferenceConfig, prefix="inference.")


def changed_fields(config: InferenceConfig) -> dict:
    """The fields of ``config`` that differ from ``InferenceConfig()``, as plain values."""
    from zeroseg.config import to_dict

    defaults = to_dict(InferenceConfig())
    return {k: v for k, v in to_dict(config).items() if defaults[k] != v}


def inference_defaults(source: str | Path) -> InferenceConfig:
    """The inference settings a release recorded, or the plain defaults for a checkpoint/run."""
    from zeroseg.inference.release import names_a_release, read_release_config, resolve_release

    if names_a_release(source):
        meta = read_release_config(resolve_release(source))
        return release_inference(meta.get("inference", {}))
    return InferenceConfig()


def pad_to_multiple(image: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad (1, 3, h, w) at the bottom/right to a multiple of the patch size."""
    h, w = image.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    return image, (h, w)
