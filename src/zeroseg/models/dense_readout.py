"""Dense readouts of a CLIP image tower: one embedding per patch in CLIP's joint space.

CLIP's image embedding comes from the class token. MaskCLIP (Zhou et al., ECCV 2022) reads one
embedding per patch instead: in the last transformer block the query-key attention is dropped and
only the value path is kept, v = out_proj(value_projection(ln_1(x))) for every token, then
``ln_post`` and the visual projection. For a ModifiedResNet tower the attention pool's query-key
attention is dropped the same way: its value and output projections map every position of the last
feature map (stride 32) into the joint space, with no positional embedding.

``residual=True`` reproduces MaskCLIP's released code instead of its paper text: the value path
is added to the block input and followed by the block's MLP (x + v, then + mlp(ln_2(.))).

Training-free readouts of a ViT tower that change only its last block (``readout``), every earlier
block unchanged, with q, k, v from the block's own projections of ln_1(x), per head, scale
s = head_dim ** -0.5, then out_proj, ``ln_post`` and the projection on the patch tokens:

- ``maskclip``: the value path alone (above);
- ``sclip`` (SCLIP, Wang et al. 2024, correlative self-attention): softmax(s q q^T) +
  softmax(s k k^T) applied to v; SCLIP's code keeps the block's residual and feed-forward;
- ``clearclip`` (ClearCLIP, Lan et al. 2024): softmax(s q q^T) applied to v, without the residual
  and the feed-forward (``clearclip_attention="qk"``: softmax(s q k^T), its released config's
  ``model_type='vanilla'``);
- ``naclip`` (NACLIP, Hajimiri et al. 2025): softmax(s k k^T + omega) applied to v, without the
  residual and the feed-forward, where omega adds exp(-d^2 / (2 sigma^2)) for patches d patch
  units apart on the patch grid (sigma = 5; 0 for the class token's row and column).

Used by the teacher-only baseline (``baselines.dense_clip``) and by the teacher's dense targets
for the student (``CLIPTeacher.encode_dense``). Shapes: D embedding size, h x w patch grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import Tensor, nn

from zeroseg.config import READOUTS
from zeroseg.errors import ZeroSegError

RESNET_STRIDE = 32  # ModifiedResNet: stem /4, then layers 2, 3 and 4 each /2
NACLIP_STD = 5.0  # NACLIP's neighbourhood Gaussian, in patch units (its default gaussian_std)


def readout_stride(visual: nn.Module) -> int:
    """Pixels per dense feature of a tower (its patch size, or 32 for a ModifiedResNet)."""
    tower = check_visual(visual)
    return RESNET_STRIDE if isinstance(tower, ModifiedResNet) else int(tower.patch_size[0])


@torch.no_grad()
def dense_features(
    visual: nn.Module,
    pixels: Tensor,
    residual: bool = False,
    readout: str = "maskclip",
    positions: str = "size",
    clearclip_attention: str = "qq",
) -> Tensor:
    """(B, 3, h, w) CLIP-normalised pixels -> (B, D, gh, gw), gh = h // stride (the patch
    embedding drops a remainder; pad first to keep it).

    For a ViT the position embedding is resampled (bicubic) to the patch grid, by size
    (``positions="size"``, MaskCLIP's code) or by the authors' scale factors of SCLIP, ClearCLIP
    and NACLIP (``positions="scale"``, ``resample_positions``). ``readout`` is one of
    ``READOUTS`` (a ModifiedResNet has MaskCLIP's only); ``residual`` applies to ``maskclip``;
    ``clearclip_attention="qk"`` is ClearCLIP's released config (``model_type='vanilla'``: q.k
    attention, still without the residual and the feed-forward) instead of its paper's q.q.
    """
    tower = check_visual(visual)
    if readout not in READOUTS:
        raise ZeroSegError(f"unknown dense readout {readout!r}: use one of {', '.join(READOUTS)}")
    pixels = pixels.to(tower.conv1.weight.dtype)
    if isinstance(tower, ModifiedResNet):
        if readout != "maskclip":
            raise ZeroSegError(f"the {readout} readout needs a ViT teacher (this one is a ResNet)")
        return _resnet_value_readout(tower, pixels)
    x = tower.conv1(pixels)  # (B, width, gh, gw)
    grid = x.shape[-2:]
    x = x.flatten(2).transpose(1, 2)
    cls = tower.class_embedding.view(1, 1, -1).to(x.dtype).expand(x.shape[0], -1, -1)
    pos = resample_positions(
        tower.positional_embedding, tuple(tower.grid_size), tuple(grid), positions
    )
    x = torch.cat([cls, x], dim=1) + pos.to(x.dtype)
    x = tower.ln_pre(x)
    blocks = tower.transformer.resblocks
    batch_first = getattr(tower.transformer, "batch_first", True)
    x = x if batch_first else x.transpose(0, 1)
    for block in blocks[:-1]:
        x = block(x)
    x = x if batch_first else x.transpose(0, 1)
    if readout == "maskclip":
        tokens = _value_readout(blocks[-1], x, residual)
    else:
        tokens = _custom_attention(blocks[-1], x, readout, tuple(grid), clearclip_attention)
    tokens = tokens[:, 1:]  # (B, gh*gw, width): the class token is dropped after the block
    tokens = tower.ln_post(tokens)
    if tower.proj is not None:
        tokens = tokens @ tower.proj
    return tokens.transpose(1, 2).reshape(x.shape[0], -1, *grid).float()


def _resnet_value_readout(visual: ModifiedResNet, pixels: Tensor) -> Tensor:
    """MaskCLIP's ResNet readout: the attention pool without query-key attention, i.e. its value
    and output projections applied to every position of the last feature map -> (B, D, gh, gw)."""
    x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(pixels)))))
    pool = visual.attnpool
    values = F.linear(x.permute(0, 2, 3, 1), pool.v_proj.weight, pool.v_proj.bias)  # (B,gh,gw,C)
    return pool.c_proj(values).permute(0, 3, 1, 2).float()


def check_visual(visual: nn.Module) -> VisionTransformer | ModifiedResNet:
    """``visual`` itself, once checked to be a tower the dense readouts support."""
    if isinstance(visual, ModifiedResNet):
        return visual
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
    return visual


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


def _custom_attention(
    block: ResidualAttentionBlock,
    x: Tensor,
    readout: str,
    grid: tuple[int, int],
    clearclip_attention: str = "qq",
) -> Tensor:
    """The last block with SCLIP's, ClearCLIP's or NACLIP's attention -> (B, L, width)."""
    attn: nn.MultiheadAttention = block.attn
    batch, length, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = (t.view(batch, length, heads, -1).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    scale = q.shape[-1] ** -0.5  # q, k, v: (B, heads, L, head_dim)
    # each readout's softmax(s a b^T + bias) v, fused (scaled_dot_product_attention; the explicit
    # form is in the module docstring and in tests/test_dense_readouts.py)
    attend = F.scaled_dot_product_attention
    if readout == "sclip":
        out = attend(q, q, v, scale=scale) + attend(k, k, v, scale=scale)
    elif readout == "clearclip":
        keys = q if clearclip_attention == "qq" else k  # the paper's q.q, or the released q.k
        out = attend(q, keys, v, scale=scale)
    else:  # naclip
        omega = neighbourhood_bias(grid, NACLIP_STD).to(x.device, x.dtype)
        out = attend(k, k, v, attn_mask=omega, scale=scale)
    out = out.transpose(1, 2).reshape(batch, length, width)
    out = block.ls_1(attn.out_proj(out))
    if readout != "sclip":
        return out
    x = x + out
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def neighbourhood_bias(grid: tuple[int, int], std: float) -> Tensor:
    """NACLIP's omega: (1 + gh*gw, 1 + gh*gw), exp(-d^2 / (2 std^2)) between patches d patch
    units apart (raster order), 0 in the class token's row and column."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    rows, cols = rows.flatten().double(), cols.flatten().double()
    squared = (rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2
    omega = torch.zeros(len(rows) + 1, len(rows) + 1, dtype=torch.float64)
    omega[1:, 1:] = torch.exp(-squared / (2 * std**2))
    return omega.float()


def resample_positions(
    pos: Tensor, old: tuple[int, int], grid: tuple[int, int], rule: str = "size"
) -> Tensor:
    """(1 + oh*ow, width) position embeddings -> (1 + gh*gw, width) for a patch grid.

    ``rule="size"``: bicubic to the grid's size (MaskCLIP's code). ``rule="scale"``: as SCLIP's,
    ClearCLIP's and NACLIP's ``interpolate_pos_encoding``: nothing changes when the grid has as
    many patches as the original one; otherwise bicubic with the scale factor (g + 0.1) / o per
    side (align_corners=False, the factor itself used for the sampling positions, not the ratio
    of the sizes), which samples other points than resampling by size.
    """
    if rule not in ("size", "scale"):
        raise ZeroSegError(f"unknown position resampling {rule!r}: use size or scale")
    if tuple(grid) == tuple(old) or (rule == "scale" and grid[0] * grid[1] == old[0] * old[1]):
        return pos
    patches = pos[1:].reshape(1, *old, -1).permute(0, 3, 1, 2).float()
    if rule == "size":
        patches = F.interpolate(patches, size=tuple(grid), mode="bicubic", align_corners=False)
    else:
        factors = ((grid[0] + 0.1) / old[0], (grid[1] + 0.1) / old[1])
        patches = F.interpolate(
            patches, scale_factor=factors, mode="bicubic", align_corners=False,
            recompute_scale_factor=False,
        )  # fmt: skip
        assert tuple(patches.shape[-2:]) == tuple(grid)
    patches = patches[0].permute(1, 2, 0).reshape(-1, pos.shape[-1]).to(pos.dtype)
    return torch.cat([pos[:1], patches])
