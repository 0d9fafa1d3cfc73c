"""MaskCLIP-style dense readout of the CLIP teacher (Zhou et al., ECCV 2022), a training-free baseline.

CLIP's image embedding comes from the class token; MaskCLIP reads one embedding per patch instead.
In the last transformer block the query-key attention is dropped and only the value path is kept:
v = out_proj(value_projection(ln_1(x))) for every token, then ``ln_post`` and the visual projection
(a 1x1 "convolution" of the patch grid into CLIP's joint space). Cosine similarity of each patch with
the class text embeddings, times the logit scale, gives per-patch query logits; they are upsampled
bilinearly to the window, soft-maxed over all queries, and a class takes the max over its synonyms.
Background and the optional top-k restriction follow ``zeroseg.inference``'s rules (``TextQueries``).

``residual=True`` reproduces MaskCLIP's released code instead of its paper text: the value path
is added to the block input and followed by the block's MLP (x + v, then + mlp(ln_2(.))).

Shapes: Q text queries, K' classes (+1 background-word column), C output channels, D embedding size,
h x w patch grid, H x W pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import Tensor, nn

from zeroseg.errors import ZeroSegError
from zeroseg.inference import InferenceConfig, SegmentationResult
from zeroseg.text_queries import TextQueries


class DenseCLIPSegmenter:
    """The teacher's patch embeddings labelled by its own text encoder; ``Segmenter``'s API.

    Args:
        teacher: a ``CLIPTeacher`` (``clip``, ``normalize``, ``encode_images``, ``build_classifier``)
            whose ``clip.visual`` is an open_clip ``VisionTransformer``.
        config: inference settings (resize, whole/slide, logit scale, background, top-k,
            templates).
        residual: keep the last block's residual and MLP (MaskCLIP's code) instead of the bare
            value path (MaskCLIP's paper).
    """

    def __init__(self, teacher, config: InferenceConfig | None = None, residual: bool = False):
        _check_visual(teacher.clip.visual)
        self.teacher = teacher.eval()
        self.config = config or InferenceConfig()
        self.residual = residual
        self.vocabulary: TextQueries | None = None
        self._text_cache: dict = {}

    @property
    def device(self) -> torch.device:
        return self.teacher.clip.visual.conv1.weight.device

    def with_config(self, **changes) -> DenseCLIPSegmenter:
        """A segmenter sharing the teacher and vocabulary with some settings changed."""
        other = DenseCLIPSegmenter(self.teacher, replace(self.config, **changes), self.residual)
        other.vocabulary, other._text_cache = self.vocabulary, self._text_cache
        return other

    def set_vocabulary(
        self,
        class_names: Sequence[str | Sequence[str]],
        background: bool = False,
        background_words: Sequence[str] = (),
    ) -> None:
        """Same contract as ``Segmenter.set_vocabulary``."""
        self.vocabulary = TextQueries.build(
            self.teacher, class_names, self.config.templates, background, background_words,
            self._text_cache,
        )  # fmt: skip

    @torch.no_grad()
    def predict(self, image: Tensor) -> SegmentationResult:
        """Segment one (3, H, W) [0,1] image -> labels (H, W), scores (C, H, W)."""
        if self.vocabulary is None:
            raise ZeroSegError("no classes set: call set_vocabulary first")
        if image.ndim != 3 or image.shape[0] != 3:
            raise ZeroSegError(f"expected a (3, H, W) image tensor, got shape {tuple(image.shape)}")
        height, width = image.shape[-2:]
        resized = resize_short_side(image.to(self.device).float().unsqueeze(0), self.config)
        if self.config.mode == "whole":
            scores = self.window_scores(resized)
        else:
            scores = self._slide(resized)
        scores = F.interpolate(scores[None], (height, width), mode="bilinear", align_corners=False)
        return SegmentationResult(scores[0].argmax(0), scores[0], list(self.vocabulary.names))

    def _slide(self, image: Tensor) -> Tensor:
        """Average the window scores over mmseg's sliding grid -> (C, H, W)."""
        _, _, height, width = image.shape
        total, count = None, torch.zeros(1, height, width, device=image.device)
        for y0, y1, x0, x1 in slide_windows(height, width, self.config.window, self.config.stride):
            scores = self.window_scores(image[:, :, y0:y1, x0:x1])
            if total is None:
                total = torch.zeros(scores.shape[0], height, width, device=image.device)
            total[:, y0:y1, x0:x1] += scores
            count[:, y0:y1, x0:x1] += 1
        return total / count

    def window_scores(self, window: Tensor) -> Tensor:
        """(1, 3, h, w) [0,1] window -> (C, h, w) class scores (background channel first if set)."""
        vocab, cfg = self.vocabulary, self.config
        h, w = window.shape[-2:]
        features = self.dense_features(window)  # (D, gh, gw)
        logits = vocab.logits(features.permute(1, 2, 0), cfg.logit_scale)  # (gh, gw, Q)
        patch = self.teacher.clip.visual.patch_size[0]
        logits = F.interpolate(
            logits.permute(2, 0, 1)[None], scale_factor=patch, mode="bilinear", align_corners=False
        )[0, :, :h, :w].permute(1, 2, 0)  # (h, w, Q)
        probs = vocab.class_max(logits.softmax(-1))  # (h, w, K')
        if cfg.top_k_classes > 0:
            probs = probs * self._top_k_restricted(window, logits)
        probs = probs.permute(2, 0, 1)
        best = float(probs[: vocab.num_classes].max())
        return vocab.with_background(probs, cfg.bg_threshold, best)

    def _top_k_restricted(self, window: Tensor, logits: Tensor) -> Tensor:
        """GroupViT's image-level restriction: keep the window's top-k classes (by CLIP's image
        embedding), re-softmax over them -> (h, w, K')."""
        vocab, cfg = self.vocabulary, self.config
        image_embedding = self.teacher.encode_images(window)[0]
        image_scores = vocab.class_max(vocab.logits(image_embedding, cfg.logit_scale))
        k = min(cfg.top_k_classes, vocab.num_classes)
        keep_classes = image_scores[: vocab.num_classes].topk(k).indices
        keep = torch.isin(vocab.query_class, keep_classes) | (vocab.query_class < 0)
        return vocab.class_max(logits.masked_fill(~keep, float("-inf")).softmax(-1))

    @torch.no_grad()
    def dense_features(self, window: Tensor) -> Tensor:
        """(1, 3, h, w) [0,1] window -> (D, gh, gw) patch embeddings in CLIP's joint space.

        The window is replicate-padded at the bottom/right to a multiple of the patch size and the
        position embedding is resampled (bicubic) to the patch grid.
        """
        visual = self.teacher.clip.visual
        window = _pad_to_multiple(window, visual.patch_size[0])
        pixels = self.teacher.normalize(window).to(visual.conv1.weight.dtype)
        x = visual.conv1(pixels)  # (1, width, gh, gw)
        grid = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.view(1, 1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + _resample_positions(visual, grid).to(x.dtype)
        x = visual.ln_pre(x)
        blocks = visual.transformer.resblocks
        batch_first = getattr(visual.transformer, "batch_first", True)
        x = x if batch_first else x.transpose(0, 1)
        for block in blocks[:-1]:
            x = block(x)
        x = x if batch_first else x.transpose(0, 1)
        tokens = _value_readout(blocks[-1], x, self.residual)[:, 1:]  # (1, gh*gw, width)
        tokens = visual.ln_post(tokens)
        if visual.proj is not None:
            tokens = tokens @ visual.proj
        return tokens[0].transpose(0, 1).reshape(-1, *grid).float()


def _check_visual(visual: nn.Module) -> None:
    if not isinstance(visual, VisionTransformer):
        raise ZeroSegError(
            f"dense CLIP readout needs an open_clip VisionTransformer, got {type(visual).__name__}"
        )
    if visual.attn_pool is not None:
        raise ZeroSegError("dense CLIP readout does not support attentional pooling towers")
    last = visual.transformer.resblocks[-1]
    if not (
        isinstance(last, ResidualAttentionBlock) and isinstance(last.attn, nn.MultiheadAttention)
    ):
        raise ZeroSegError(
            f"dense CLIP readout needs open_clip's default attention blocks, got {type(last).__name__}"
        )


def _value_readout(block: ResidualAttentionBlock, x: Tensor, residual: bool) -> Tensor:
    """The last block without query-key attention: each token gets its own value -> (B, L, width)."""
    attn: nn.MultiheadAttention = block.attn
    width = x.shape[-1]
    if attn.in_proj_weight is not None:
        weight = attn.in_proj_weight[2 * width :]
    else:
        weight = attn.v_proj_weight
    bias = attn.in_proj_bias[2 * width :] if attn.in_proj_bias is not None else None
    v = block.ls_1(attn.out_proj(F.linear(block.ln_1(x), weight, bias)))
    if not residual:
        return v
    v = x + v
    return v + block.ls_2(block.mlp(block.ln_2(v)))


def _resample_positions(visual: VisionTransformer, grid: tuple[int, int]) -> Tensor:
    """(1 + gh*gw, width) position embeddings for a patch grid (bicubic on the patch part)."""
    pos = visual.positional_embedding
    old = tuple(visual.grid_size)
    if tuple(grid) == old:
        return pos
    patches = pos[1:].reshape(1, *old, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches.float(), size=tuple(grid), mode="bicubic", align_corners=False)
    patches = patches[0].permute(1, 2, 0).reshape(-1, pos.shape[-1]).to(pos.dtype)
    return torch.cat([pos[:1], patches])


def _pad_to_multiple(image: Tensor, multiple: int) -> Tensor:
    h, w = image.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    return image


def resize_short_side(image: Tensor, config: InferenceConfig) -> Tensor:
    """(1, 3, H, W) -> resized so the short side is ``config.short_side``, the long side capped at
    ``config.max_long_side`` (mmseg's keep-ratio resize); unchanged when ``short_side`` is None."""
    if config.short_side is None:
        return image
    h, w = image.shape[-2:]
    scale = min(config.short_side / min(h, w), config.max_long_side / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if size == (h, w):
        return image
    resized = F.interpolate(image, size, mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp(0, 1)


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
