"""MaskCLIP-style dense readout of the CLIP teacher (Zhou et al., ECCV 2022), a training-free baseline.

The teacher's patch embeddings (``zeroseg.models.dense_readout``: the last block's value path, no
query-key attention) are compared with the class text embeddings: cosine similarity times the logit
scale gives per-patch query logits; they are upsampled bilinearly to the window, soft-maxed over all
queries, and a class takes the max over its synonyms. Background and the optional top-k restriction
follow ``zeroseg.inference.segmenter``'s rules (``TextQueries``).

With ``merge="logits"`` (the SCLIP, ClearCLIP and NACLIP protocols) ``predict`` follows their
authors' order instead (``InferenceConfig``): window cosine logits averaged, enlarged to the
input's size, PAMR on those logits guided by the resized normalised image enlarged back, then
temperature, softmax, the synonyms' max, SCLIP's area threshold and one uncapped probability
threshold. The result's scores are then the full-size class probabilities (before the threshold,
which only changes the labels, as in the authors' code).

Shapes: Q text queries, K' classes (+1 background-word column), C output channels, D embedding size,
h x w patch grid, H x W pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zeroseg.inference.config import InferenceConfig
from zeroseg.inference.pamr import pamr
from zeroseg.inference.segmenter import (
    SegmentationResult,
    WindowSegmenter,
    check_image,
    pad_to_multiple,
    resize_short_side,
    slide_average,
)
from zeroseg.models.dense_readout import dense_features, readout_stride


class DenseCLIPSegmenter(WindowSegmenter):
    """The teacher's patch embeddings labelled by its own text encoder; ``Segmenter``'s API.

    Args:
        teacher: a ``CLIPTeacher`` (``clip``, ``normalize``, ``encode_images``, ``build_classifier``)
            whose ``clip.visual`` is an open_clip ``VisionTransformer``.
        config: inference settings (resize, whole/slide, logit scale, background, top-k,
            templates).
        residual: keep the last block's residual and MLP (MaskCLIP's code) instead of the bare
            value path (MaskCLIP's paper).
        readout: ``maskclip``, ``sclip``, ``clearclip`` or ``naclip`` (``zeroseg.models.dense_readout``).
    """

    def __init__(
        self,
        teacher,
        config: InferenceConfig | None = None,
        residual: bool = False,
        readout: str = "maskclip",
    ):
        self.stride = readout_stride(teacher.clip.visual)
        super().__init__(teacher, config)
        self.residual = residual
        self.readout = readout

    def window_scores(self, window: Tensor) -> Tensor:
        """(1, 3, h, w) [0,1] window -> (C, h, w) class scores (background channel first if set)."""
        vocab, cfg = self._queries, self.config
        h, w = window.shape[-2:]
        features = self.dense_features(window)  # (D, gh, gw)
        logits = vocab.logits(features.permute(1, 2, 0), cfg.logit_scale)  # (gh, gw, Q)
        logits = F.interpolate(
            logits.permute(2, 0, 1)[None], scale_factor=self.stride, mode="bilinear",
            align_corners=False,
        )[0, :, :h, :w].permute(1, 2, 0)  # (h, w, Q)  # fmt: skip
        probs = vocab.class_max(logits.softmax(-1))  # (h, w, K')
        if cfg.top_k_classes > 0:
            image_embedding = self.teacher.encode_images(window)[0]
            image_logits = vocab.logits(image_embedding, cfg.logit_scale)
            probs = probs * vocab.top_k_restricted(logits, image_logits, cfg.top_k_classes)
        probs = probs.permute(2, 0, 1)
        best = float(probs[: vocab.num_classes].max())
        return vocab.with_background(probs, cfg.bg_threshold, best)

    @torch.no_grad()
    def dense_features(self, window: Tensor) -> Tensor:
        """(1, 3, h, w) [0,1] window -> (D, gh, gw) patch embeddings in CLIP's joint space.

        The window is replicate-padded at the bottom/right to a multiple of the stride.
        """
        window, _ = pad_to_multiple(window, self.stride)
        return self._features(self.teacher.normalize(window))

    def _features(self, pixels: Tensor) -> Tensor:
        """(1, 3, h, w) normalised pixels -> (D, h // stride, w // stride), at ``precision``."""
        cfg = self.config
        with self._autocast():
            features = dense_features(
                self.teacher.clip.visual, pixels, self.residual, self.readout,
                positions=cfg.pos_resample, clearclip_attention=cfg.clearclip_attention,
            )  # fmt: skip
        return features[0].float()

    @torch.no_grad()
    def predict(self, image: Tensor) -> SegmentationResult:
        """Segment one (3, H, W) [0,1] image (``merge="logits"``: the authors' order)."""
        if self.config.merge != "logits":
            return super().predict(image)
        vocab, cfg = self._queries, self.config
        check_image(image)
        size = tuple(image.shape[-2:])
        resized = resize_short_side(image.to(self.device).float().unsqueeze(0), cfg)
        pixels = self.authors_normalize(resized)
        whole = cfg.mode == "whole"
        logits = self.window_logits(pixels) if whole else self._slide_logits(pixels)
        logits = F.interpolate(logits[None], size, mode="bilinear", align_corners=False)[0]
        if cfg.pamr_steps:
            guide = F.interpolate(pixels, size, mode="bilinear", align_corners=False)
            logits = pamr(guide, logits[None], cfg.pamr_steps, cfg.pamr_dilations)[0]
        probs = vocab.class_max((logits * cfg.logit_scale).softmax(0).permute(1, 2, 0))
        scores = probs.permute(2, 0, 1)  # (K', H, W): classes, then the background words
        if vocab.background:
            fg = scores[: vocab.num_classes]
            bg = scores[vocab.num_classes :] if scores.shape[0] > vocab.num_classes else None
            bg = bg if bg is not None else torch.zeros_like(fg[:1])
            scores = torch.cat([bg, fg])
            if cfg.area_threshold > 0:
                scores = area_filtered(scores, cfg.area_threshold)
        labels = scores.argmax(0)
        if vocab.background and cfg.bg_threshold > 0:
            labels[scores.max(0).values < cfg.bg_threshold] = 0
        names = list(vocab.names)
        return SegmentationResult(labels, scores, names, refined_scores=scores)

    def authors_normalize(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) [0,1] -> normalised as the authors' data preprocessor does: on the 0-255
        scale with the teacher's mean and std written to 3 decimals (OpenAI CLIP's: 122.771,
        116.746, 104.094 / 68.501, 66.632, 70.323). The exact constants move the scores by
        about 5e-5 at logit scale 65 and flip near-tied labels."""
        mean = (self.teacher.pixel_mean * 255).double().mul(1000).round().div(1000).float()
        std = (self.teacher.pixel_std * 255).double().mul(1000).round().div(1000).float()
        return (images * 255 - mean) / std

    def window_logits(self, pixels: Tensor) -> Tensor:
        """(1, 3, h, w) normalised window -> (Q, h, w) cosine logits at the window's size, the
        patch remainder handled by ``config.remainder``."""
        cfg, vocab = self.config, self._queries
        h, w = pixels.shape[-2:]
        top = left = 0
        if cfg.remainder == "replicate":
            pixels, _ = pad_to_multiple(pixels, self.stride)
        elif cfg.remainder == "zeros":
            pad_h, pad_w = (-h) % self.stride, (-w) % self.stride
            top, left = pad_h // 2, pad_w // 2
            pixels = F.pad(pixels, (left, pad_w - left, top, pad_h - top))
        features = self._features(pixels)  # (D, gh, gw)
        logits = vocab.logits(features.permute(1, 2, 0), 1.0).permute(2, 0, 1)  # (Q, gh, gw)
        out = (h, w) if cfg.remainder == "drop" else tuple(pixels.shape[-2:])
        logits = F.interpolate(logits[None], out, mode="bilinear", align_corners=False)[0]
        return logits[:, top : top + h, left : left + w]

    def _slide_logits(self, pixels: Tensor) -> Tensor:
        """Average the windows' cosine logits over mmseg's sliding grid -> (Q, H, W)."""
        return slide_average(pixels, self.config.window, self.config.stride, self.window_logits)


def area_filtered(scores: Tensor, threshold: float) -> Tensor:
    """SCLIP's ``area_thd``: (C, H, W) scores, background first -> the scores of the foreground
    classes whose arg-max area is at most ``threshold`` of all foreground pixels set to 0."""
    predicted = scores.argmax(0)
    area = torch.stack([(predicted == c).sum() for c in range(1, scores.shape[0])]).float()
    keep = (area > threshold * area.sum()).to(scores.dtype)
    return torch.cat([scores[:1], scores[1:] * keep[:, None, None]])
