"""MaskCLIP-style dense readout of the CLIP teacher (Zhou et al., ECCV 2022), a training-free baseline.

CLIP's image embedding comes from the class token; MaskCLIP reads one embedding per patch instead.
In the last transformer block the query-key attention is dropped and only the value path is kept:
v = out_proj(value_projection(ln_1(x))) for every token, then ``ln_post`` and the visual projection
(a 1x1 "convolution" of the patch grid into CLIP's joint space). Cosine similarity of each patch with
the class text embeddings, times the logit scale, gives per-patch query logits; they are upsampled
bilinearly to the window, soft-maxed over all queries, and a class takes the max over its synonyms.
Background and the optional top-k restriction follow ``zeroseg.inference``'s rules (``TextQueries``).

For a ModifiedResNet tower (MaskCLIP's ResNet variant) the attention pool's query-key attention is
dropped in the same way: its value and output projections map every position of the last feature
map (stride 32) into the joint space, with no positional embedding.

``residual=True`` reproduces MaskCLIP's released code instead of its paper text: the value path
is added to the block input and followed by the block's MLP (x + v, then + mlp(ln_2(.))).

Shapes: Q text queries, K' classes (+1 background-word column), C output channels, D embedding size,
h x w patch grid, H x W pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import Tensor, nn

from zeroseg.errors import ZeroSegError
from zeroseg.inference import InferenceConfig, WindowSegmenter, pad_to_multiple

RESNET_STRIDE = 32  # ModifiedResNet: stem /4, then layers 2, 3 and 4 each /2


class DenseCLIPSegmenter(WindowSegmenter):
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
        super().__init__(teacher, config)
        self.residual = residual
        visual = teacher.clip.visual
        self.is_resnet = isinstance(visual, ModifiedResNet)
        self.stride = RESNET_STRIDE if self.is_resnet else visual.patch_size[0]

    def window_scores(self, window: Tensor) -> Tensor:
        """(1, 3, h, w) [0,1] window -> (C, h, w) class scores (background channel first if set)."""
        vocab, cfg = self.vocabulary, self.config
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

        The window is replicate-padded at the bottom/right to a multiple of the patch size and the
        position embedding is resampled (bicubic) to the patch grid.
        """
        visual = self.teacher.clip.visual
        window, _ = pad_to_multiple(window, self.stride)
        pixels = self.teacher.normalize(window).to(visual.conv1.weight.dtype)
        if self.is_resnet:
            return _resnet_value_readout(visual, pixels)
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


def _resnet_value_readout(visual: ModifiedResNet, pixels: Tensor) -> Tensor:
    """MaskCLIP's ResNet readout: the attention pool without query-key attention, i.e. its value
    and output projections applied to every position of the last feature map -> (D, gh, gw)."""
    x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(pixels)))))
    pool = visual.attnpool
    values = F.linear(x[0].permute(1, 2, 0), pool.v_proj.weight, pool.v_proj.bias)  # (gh, gw, C)
    return pool.c_proj(values).permute(2, 0, 1).float()


def _check_visual(visual: nn.Module) -> None:
    if isinstance(visual, ModifiedResNet):
        return
    if not isinstance(visual, VisionTransformer):
        raise ZeroSegError(
            "dense CLIP readout needs an open_clip VisionTransformer or ModifiedResNet, got "
            f"{type(visual).__name__}"
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
