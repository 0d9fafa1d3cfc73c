"""MAE reconstruction decoder (paper §2.1: 8 transformer layers, MSE in pixel space).

Shapes: B batch, N = h*w patches, N_vis visible patches, D encoder width, E decoder width,
P = patch_size**2 * 3 pixel values per patch.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn


def sincos_pos_embed_2d(dim: int, grid: tuple[int, int], device: torch.device) -> Tensor:
    """Fixed 2-D sine-cosine positional embedding (MAE's decoder), (1, h*w, dim) in raster order."""
    if dim % 4:
        raise ValueError(f"sin-cos embedding width must be divisible by 4, got {dim}")
    h, w = grid
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, device=device, dtype=torch.float32) / (dim / 4))
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    out_y = ys.reshape(-1, 1) * omega
    out_x = xs.reshape(-1, 1) * omega
    emb = torch.cat([out_x.sin(), out_x.cos(), out_y.sin(), out_y.cos()], dim=1)
    return emb.unsqueeze(0)


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(B, 3, H, W) -> (B, N, patch_size**2 * 3) in raster patch order."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


class ReconstructionDecoder(nn.Module):
    """Lightweight MAE decoder: embed visible tokens, add mask tokens, unshuffle, predict pixels."""

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        heads: int,
        patch_size: int,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed = nn.Linear(in_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        norm = partial(nn.LayerNorm, eps=norm_eps)  # MAE: eps 1e-6 in the blocks and at the end
        # timm annotates norm_layer as a class, but calls it like any factory (timm passes partials)
        blocks = [
            Block(width, heads, mlp_ratio, qkv_bias=True, norm_layer=norm)  # type: ignore[arg-type]
            for _ in range(depth)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm(width)
        self.pred = nn.Linear(width, patch_size * patch_size * 3)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self, visible_tokens: Tensor, cls_token: Tensor, ids_restore: Tensor, grid: tuple[int, int]
    ) -> Tensor:
        """Predict every patch's pixels.

        Args:
            visible_tokens: (B, N_vis, D) encoder tokens of the visible patches, in keep order.
            cls_token: (B, D) encoder class token.
            ids_restore: (B, N) permutation restoring raster order (from the encoder).
            grid: (h, w) patch grid.

        Returns:
            (B, N, P) predicted pixel values per patch in raster order.
        """
        x = self.embed(visible_tokens)
        batch, num_vis, width = x.shape
        num_patches = ids_restore.shape[1]
        masked = self.mask_token.expand(batch, num_patches - num_vis, -1)
        x = torch.cat([x, masked.to(x.dtype)], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, width))
        x = x + sincos_pos_embed_2d(width, grid, x.device).to(x.dtype)
        cls = self.embed(cls_token).unsqueeze(1)
        x = self.blocks(torch.cat([cls, x], dim=1))
        return self.pred(self.norm(x[:, 1:]))
