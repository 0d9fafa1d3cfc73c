"""GroupViT-style segmentation head that emits segment tokens in the teacher's space (paper §2.1).

Layout (paper: 5 layers, grouping after the 2nd and 4th; GroupViT for the details):
  [tokens + 32 group tokens] -> 2 blocks -> grouping 1 (N -> 32 segments)
  [32 segments + 8 group tokens] -> 2 blocks -> grouping 2 (32 -> 8 segments)
  [8 segments] -> 1 block -> LayerNorm
  z = MLP(mean_i segment_i); g_i = MLP(segment_i) with the same MLP (GroupViT shares its projector).
The next stage's group tokens are learned (zero-initialised) tokens plus a token-mixing projection of
the previous stage's group tokens (GroupViT ``group_projector``).

Shapes: B batch, N input tokens, S_k group tokens of stage k, S final segments, C head width,
D_out teacher embedding size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from zeroseg.models.grouping import GroupingBlock, MixerMlp


@dataclass
class SegHeadOutput:
    """Segment tokens and grouping maps.

    Attributes:
        segment_embeddings: (B, S, D_out) projected segment tokens g_i (not normalised).
        global_embedding: (B, D_out) projected pooled embedding z (not normalised).
        assignments: per stage, (B, N_k, S_k) assignment as used (one-hot when ``hard``).
        soft_assignments: per stage, (B, N_k, S_k) noise-free softmax over groups (rows sum to 1).
    """

    segment_embeddings: Tensor
    global_embedding: Tensor
    assignments: list[Tensor]
    soft_assignments: list[Tensor]

    def float(self) -> SegHeadOutput:
        """The same output in float32 (after a half-precision forward)."""
        return SegHeadOutput(
            self.segment_embeddings.float(),
            self.global_embedding.float(),
            [a.float() for a in self.assignments],
            [a.float() for a in self.soft_assignments],
        )


class Projector(nn.Module):
    """The shared MLP that maps head tokens into the teacher's embedding space.

    Args:
        dim: head width C.
        hidden: hidden width (0 = a single linear layer).
        out_dim: teacher embedding size D_out.
        kind: ``"mlp"`` (Linear-GELU-Linear) or ``"groupvit"`` (GroupViT's ``ProjectMLP``:
            Linear-BatchNorm-ReLU-Linear, its 1x1 Conv1d layers, BatchNorm statistics over all
            images and tokens of the call).
    """

    def __init__(self, dim: int, hidden: int, out_dim: int, kind: str = "mlp") -> None:
        super().__init__()
        if hidden <= 0:
            self.net: nn.Module = nn.Linear(dim, out_dim)
        elif kind == "groupvit":
            self.net = _TokenBatchNormMlp(dim, hidden, out_dim)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        else:
            raise ValueError(f"unknown projector kind {kind!r} (mlp or groupvit)")

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., D_out)."""
        return self.net(x)


class _TokenBatchNormMlp(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Linear over the last axis, BatchNorm over all leading axes."""

    def __init__(self, dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(dim, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., D_out)."""
        lead = x.shape[:-1]
        h = self.norm(self.hidden(x.reshape(-1, x.shape[-1])))
        return self.out(torch.relu(h)).reshape(*lead, -1)


class SegmentationHead(nn.Module):
    """Transformer head with grouping stages.

    Args:
        in_dim: width of the encoder tokens fed in.
        width: head width C.
        heads: attention heads of the head's blocks.
        depths: blocks before each grouping stage, then blocks after the last one
            (len = len(num_group_tokens) + 1).
        num_group_tokens: group tokens per grouping stage (32, 8 in the paper).
        out_dim: teacher embedding size D_out.
        projector_hidden: hidden width of the shared projector MLP (0 = linear).
        hard, gumbel, gumbel_tau: assignment options (``grouping.assign``).
        projector: ``Projector`` kind.
        norm_eps: eps of every LayerNorm in the head (GroupViT uses PyTorch's 1e-5).
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        heads: int,
        depths: tuple[int, ...],
        num_group_tokens: tuple[int, ...],
        out_dim: int,
        projector_hidden: int = 4096,
        hard: bool = True,
        gumbel: bool = True,
        gumbel_tau: float = 1.0,
        projector: str = "mlp",
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_group_tokens) + 1:
            raise ValueError("seg_head.depths needs one entry per grouping stage plus one")
        self.input_proj = nn.Linear(in_dim, width) if in_dim != width else nn.Identity()
        self.group_tokens = nn.ParameterList()
        self.group_projectors = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.groupings = nn.ModuleList()
        for k, num in enumerate(num_group_tokens):
            init = torch.zeros(1, num, width)
            if k == 0:
                nn.init.trunc_normal_(init, std=0.02)
            self.group_tokens.append(nn.Parameter(init))
            if k > 0:
                prev = num_group_tokens[k - 1]
                self.group_projectors.append(
                    nn.Sequential(nn.LayerNorm(width, norm_eps), MixerMlp(prev, width // 2, num))
                )
            self.stages.append(_blocks(width, heads, depths[k], norm_eps))
            self.groupings.append(
                GroupingBlock(width, heads, num, num, hard, gumbel, gumbel_tau, norm_eps)
            )
        self.final_blocks = _blocks(width, heads, depths[-1], norm_eps)
        self.norm = nn.LayerNorm(width, norm_eps)
        self.projector = Projector(width, projector_hidden, out_dim, projector)

    @property
    def num_segments(self) -> int:
        return self.group_tokens[-1].shape[1]

    def forward(
        self, tokens: Tensor, fixed_assignments: list[Tensor] | None = None
    ) -> SegHeadOutput:
        """Group (B, N, in_dim) encoder tokens into S segment tokens.

        Args:
            fixed_assignments: per stage, (B, N_k, S_k) assignments to pool with instead of
                computing them (a second pass over an earlier pass's grouping); None = compute.
        """
        x = self.input_proj(tokens)
        batch = x.shape[0]
        assignments, soft_assignments = [], []
        previous_groups = None
        for k, (blocks, grouping) in enumerate(zip(self.stages, self.groupings)):
            groups = self.group_tokens[k].expand(batch, -1, -1)
            if previous_groups is not None:
                groups = groups + self.group_projectors[k - 1](previous_groups)
            num_tokens = x.shape[1]
            joint = blocks(torch.cat([x, groups], dim=1))
            x, groups = joint[:, :num_tokens], joint[:, num_tokens:]
            fixed = None if fixed_assignments is None else fixed_assignments[k]
            x, attn, soft = grouping(x, groups, fixed)
            assignments.append(attn)
            soft_assignments.append(soft)
            previous_groups = groups
        segments = self.norm(self.final_blocks(x))
        return SegHeadOutput(
            segment_embeddings=self.projector(segments),
            global_embedding=self.projector(segments.mean(dim=1)),
            assignments=assignments,
            soft_assignments=soft_assignments,
        )


def _blocks(width: int, heads: int, depth: int, norm_eps: float) -> nn.Sequential:
    """Pre-norm ViT blocks (timm) with LayerNorm eps ``norm_eps`` (timm's own default is 1e-6)."""
    norm = partial(nn.LayerNorm, eps=norm_eps)
    blocks = [
        # timm annotates norm_layer as a class, but calls it like any factory (timm passes partials)
        Block(width, heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=norm)  # type: ignore[arg-type]
        for _ in range(depth)
    ]
    return nn.Sequential(*blocks)
