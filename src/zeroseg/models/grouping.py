"""GroupViT's grouping layers, the novel blocks of the segmentation head (paper §2.1, GroupViT).

Shapes: B batch, N input tokens (patches or previous-stage segments), S_in group tokens entering a
grouping block, S output segments, C width.

Assignment (GroupViT ``AssignAttention``): logits A = (W_q g)(W_k x)^T / sqrt(C) of shape (B, S, N);
a softmax over the *group* axis makes every input token distribute its mass over the groups.
While training the assignment is Gumbel-softmax (tau = 1), hard, with the straight-through estimator
(one-hot forward, soft gradient); at eval there is no noise, and the assignment is the hard argmax
when ``hard`` and the plain softmax otherwise (GroupViT's ``AssignAttention.get_attn``). The soft map (plain
softmax, no noise) is always returned as well: inference composes the soft maps of the stages.
"""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import Tensor, nn


def gumbel_noise(like: Tensor) -> Tensor:
    """Standard Gumbel(0, 1) samples shaped like ``like``: -log(Exp(1))."""
    return -torch.empty_like(like).exponential_().log()


def assign(logits: Tensor, dim: int, hard: bool, gumbel: bool, tau: float) -> tuple[Tensor, Tensor]:
    """Turn assignment logits into (assignment, soft map), both normalised over ``dim``.

    Returns:
        The assignment used for pooling (one-hot with straight-through gradient when ``hard``;
        Gumbel-perturbed when ``gumbel``) and the noise-free soft map ``softmax(logits, dim)``.
    """
    soft = logits.softmax(dim)
    perturbed = (logits + gumbel_noise(logits)) / tau if gumbel else logits
    y_soft = perturbed.softmax(dim) if gumbel else soft
    if not hard:
        return y_soft, soft
    index = y_soft.argmax(dim, keepdim=True)
    y_hard = torch.zeros_like(y_soft).scatter_(dim, index, 1.0)
    return y_hard - y_soft.detach() + y_soft, soft


def compose_assignments(stage_maps: list[Tensor]) -> Tensor:
    """Chain per-stage maps [(B, N, S_1), (B, S_1, S_2), ...] into pixels-to-final-segments (B, N, S).

    Each stage's rows sum to 1, so the composed rows do too.
    """
    maps = stage_maps[0]
    for stage in stage_maps[1:]:
        maps = maps @ stage
    return maps


class MixerMlp(nn.Module):
    """Token-mixing MLP: maps S_in tokens to S_out tokens by an MLP over the token axis."""

    def __init__(self, num_in: int, hidden: int, num_out: int) -> None:
        super().__init__()
        self.mlp = Mlp(num_in, hidden, num_out)

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, S_in, C) -> (B, S_out, C)."""
        return self.mlp(tokens.transpose(1, 2)).transpose(1, 2)


class CrossAttnBlock(nn.Module):
    """Post-norm cross-attention block: queries attend to keys, then an MLP, then LayerNorm.

    The attention is ``nn.MultiheadAttention`` without weights returned, which PyTorch computes with
    the fused ``scaled_dot_product_attention``; ``fused = False`` asks for the weights instead, which
    takes PyTorch's explicit matmul-softmax-matmul path (the same numbers, for tests and timing).
    """

    fused = True

    def __init__(
        self, dim: int, heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim, norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim)
        self.norm_post = nn.LayerNorm(dim, norm_eps)

    def forward(self, queries: Tensor, keys: Tensor) -> Tensor:
        """(B, S, C) queries over (B, N, C) keys -> (B, S, C)."""
        x = queries + self.attn(queries, keys, keys, need_weights=not self.fused)[0]
        x = x + self.mlp(self.norm_mlp(x))
        return self.norm_post(x)


class AssignAttention(nn.Module):
    """Single-head assignment of input tokens to group tokens, with GroupViT's +1 normalisation."""

    def __init__(self, dim: int, hard: bool, gumbel: bool, tau: float, assign_eps: float = 1.0):
        super().__init__()
        self.scale = dim**-0.5
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.hard, self.gumbel, self.tau, self.assign_eps = hard, gumbel, tau, assign_eps

    def forward(
        self, groups: Tensor, tokens: Tensor, fixed: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Pool (B, N, C) tokens into (B, S, C) groups.

        Args:
            fixed: (B, N, S) an assignment to pool with instead of computing one (used as given:
                detach it to keep the assignment out of the gradient).

        Returns:
            new groups (B, S, C); assignment (B, N, S) as used (one-hot when hard); soft map
            (B, N, S) = softmax over groups without noise (rows sum to 1).
        """
        logits = self.q_proj(groups) @ self.k_proj(tokens).transpose(1, 2) * self.scale  # (B,S,N)
        gumbel = self.gumbel and self.training
        attn, soft = assign(logits, dim=1, hard=self.hard, gumbel=gumbel, tau=self.tau)
        if fixed is not None:
            attn = fixed.transpose(1, 2)
        pooled = attn / (
            attn.sum(dim=-1, keepdim=True) + self.assign_eps
        )  # mean with +1 (GroupViT)
        out = self.out_proj(pooled @ self.v_proj(tokens))
        return out, attn.transpose(1, 2), soft.transpose(1, 2)


class GroupingBlock(nn.Module):
    """Merge N input tokens into S segment tokens (GroupViT ``GroupingBlock``).

    Args:
        dim: token width C.
        heads: heads of the cross-attention that refines the group tokens.
        num_group_tokens: S_in group tokens entering the block.
        num_output_groups: S segments leaving it (token-mixing MLP S_in -> S).
        norm_eps: eps of the block's LayerNorms (GroupViT: 1e-5).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        num_group_tokens: int,
        num_output_groups: int,
        hard: bool = True,
        gumbel: bool = True,
        tau: float = 1.0,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm_tokens = nn.LayerNorm(dim, norm_eps)
        self.norm_x = nn.LayerNorm(dim, norm_eps)
        self.mix = MixerMlp(num_group_tokens, dim // 2, num_output_groups)
        self.norm_post_mix = nn.LayerNorm(dim, norm_eps)
        self.pre_assign = CrossAttnBlock(dim, heads, norm_eps=norm_eps)
        self.assign = AssignAttention(dim, hard, gumbel, tau)
        self.norm_new = nn.LayerNorm(dim, norm_eps)
        self.mlp = Mlp(dim, 4 * dim, dim)

    def forward(
        self, tokens: Tensor, group_tokens: Tensor, fixed: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(B, N, C) tokens and (B, S_in, C) group tokens -> (B, S, C) segments, (B, N, S) maps.

        Args:
            fixed: (B, N, S) an assignment to pool with instead of computing one.

        Returns:
            segments, assignment (hard in training and eval, as used), soft map.
        """
        tokens = self.norm_x(tokens)
        groups = self.norm_post_mix(self.mix(self.norm_tokens(group_tokens)))
        groups = self.pre_assign(groups, tokens)  # group tokens attend to all tokens
        pooled, attn, soft = self.assign(groups, tokens, fixed)
        segments = pooled + groups  # GroupViT's residual: the group token plus what it pooled
        segments = segments + self.mlp(self.norm_new(segments))
        return segments, attn, soft
