"""MAE-style masked ViT encoder on a timm VisionTransformer (paper §2.1).

Shapes: B batch, N = h*w patches, N_vis visible patches, D encoder width.
The encoder owns the student's input normalisation (ImageNet mean/std); batches carry [0,1] pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class EncoderOutput:
    """Encoder tokens for the visible patches.

    Attributes:
        patch_tokens: (B, N_vis, D) normalised output tokens of the visible patches, in keep order.
        cls_token: (B, D) output of the class token.
        ids_keep: (B, N_vis) raster index of each visible patch, in the tokens' (keep) order.
        ids_restore: (B, N) inverse permutation that restores raster order after appending masked.
        mask: (B, N) 1 for masked (hidden) patches, 0 for visible ones, in raster order.
        grid: (h, w) patch grid of the input.
    """

    patch_tokens: Tensor
    cls_token: Tensor
    ids_keep: Tensor
    ids_restore: Tensor
    mask: Tensor
    grid: tuple[int, int]


def random_masking(
    batch: int, num_patches: int, mask_ratio: float, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """MAE's per-sample random masking by argsort of uniform noise.

    Keeps ``int(N * (1 - mask_ratio))`` patches (MAE's ``len_keep`` rule: 78 of 196 at 60%).

    Returns:
        ids_keep (B, N_vis), ids_restore (B, N), mask (B, N) with 1 = masked.
    """
    num_keep = int(num_patches * (1 - mask_ratio))
    noise = torch.rand(batch, num_patches, device=device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :num_keep]
    mask = torch.ones(batch, num_patches, device=device)
    mask[:, :num_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_keep, ids_restore, mask


class MaskedViTEncoder(nn.Module):
    """A timm ViT trunk that encodes only a random subset of patches.

    Args:
        vit: a ``timm`` VisionTransformer with a class token and absolute positional embeddings,
            created with ``dynamic_img_size=True`` so its patch embedding accepts any size.
    """

    pixel_mean: Tensor  # buffers, registered in __init__
    pixel_std: Tensor

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        if getattr(vit, "num_prefix_tokens", None) != 1 or vit.pos_embed is None:
            raise ValueError("MaskedViTEncoder needs a timm ViT with one class token and pos_embed")
        self.vit = cast(VisionTransformer, vit)  # or a module with its attributes, checked above
        self.patch_size: int = self.vit.patch_embed.patch_size[0]
        self.input_size = int(self.vit.patch_embed.img_size[0])  # training resolution (square)
        self.width = self.vit.embed_dim
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    @property
    def _pos_embed(self) -> Tensor:
        pos = self.vit.pos_embed
        assert pos is not None  # checked in __init__
        return pos

    @property
    def _cls_token(self) -> Tensor:
        cls = self.vit.cls_token
        assert cls is not None  # one class token, checked in __init__
        return cls

    def normalize(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) pixels in [0,1] -> ImageNet-normalised."""
        return (images - self.pixel_mean) / self.pixel_std

    def patch_positions(self, grid: tuple[int, int]) -> Tensor:
        """(1, N, D) positional embeddings of the patches, resampled to ``grid`` if needed."""
        pos = self._pos_embed
        base = self.vit.patch_embed.grid_size
        if tuple(grid) != tuple(base):
            pos = resample_abs_pos_embed(pos, list(grid), list(base), num_prefix_tokens=1)
        return pos[:, 1:]

    def forward(self, images: Tensor, mask_ratio: float = 0.0) -> EncoderOutput:
        """Encode (B, 3, H, W) [0,1] images, hiding ``mask_ratio`` of the patches (none at 0)."""
        vit = self.vit
        x = vit.patch_embed(self.normalize(images))  # (B, h, w, D) with dynamic_img_size
        batch, h, w, dim = x.shape
        x = x.reshape(batch, h * w, dim) + self.patch_positions((h, w))
        if mask_ratio > 0:
            ids_keep, ids_restore, mask = random_masking(batch, h * w, mask_ratio, x.device)
            x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
        else:
            ids_keep = torch.arange(h * w, device=x.device).expand(batch, -1)
            ids_restore = ids_keep
            mask = torch.zeros(batch, h * w, device=x.device)
        cls = (self._cls_token + self._pos_embed[:, :1]).expand(batch, -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = vit.norm_pre(x)
        x = vit.blocks(x)
        x = vit.norm(x)
        return EncoderOutput(x[:, 1:], x[:, 0], ids_keep, ids_restore, mask, (h, w))
