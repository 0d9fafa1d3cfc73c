"""MaskCLIP-style dense readout of the CLIP teacher (Zhou et al., ECCV 2022), a training-free baseline.

The teacher's patch embeddings (``zeroseg.models.dense_readout``: the last block's value path, no
query-key attention) are compared with the class text embeddings: cosine similarity times the logit
scale gives per-patch query logits; they are upsampled bilinearly to the window, soft-maxed over all
queries, and a class takes the max over its synonyms. Background and the optional top-k restriction
follow ``zeroseg.inference.segmenter``'s rules (``TextQueries``).

Shapes: Q text queries, K' classes (+1 background-word column), C output channels, D embedding size,
h x w patch grid, H x W pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zeroseg.inference.config import InferenceConfig
from zeroseg.inference.segmenter import WindowSegmenter, pad_to_multiple
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
        pixels = self.teacher.normalize(window)
        return dense_features(self.teacher.clip.visual, pixels, self.residual, self.readout)[0]
