"""Fused attention (``scaled_dot_product_attention``) in the student, and a switch to turn it off.

Where the student attends, and how:

- the timm ``Block``s of the encoder, the head's stages and the MAE decoder: timm's ``Attention``
  calls ``F.scaled_dot_product_attention`` when its ``fused_attn`` is set, which timm does by
  default (``TIMM_FUSED_ATTN=0`` in the environment turns it off);
- the grouping's ``CrossAttnBlock`` (group tokens attend to the tokens): ``nn.MultiheadAttention``
  without weights returned, which PyTorch computes with ``F.scaled_dot_product_attention``;
- the grouping's ``AssignAttention`` is not an attention of that kind: its softmax runs over the
  groups, not the keys, with Gumbel noise and a hard straight-through assignment, and it pools
  with GroupViT's ``+1`` normalisation. It stays explicit.

So the fused path is the default everywhere it applies; ``set_fused_attention(model, False)`` turns
on the explicit matmul-softmax-matmul path (the same numbers to float rounding, tested), for tests
and timing. Weights, their names and shapes do not change either way.
"""

from __future__ import annotations

from timm.layers import Attention
from torch import nn

from zeroseg.models.grouping import CrossAttnBlock


def set_fused_attention(model: nn.Module, enabled: bool) -> int:
    """Switch every attention of ``model`` to the fused (True) or the explicit (False) path.

    Returns:
        How many attention modules were switched (timm ``Attention`` and ``CrossAttnBlock``).
    """
    switched = 0
    for module in model.modules():
        if isinstance(module, Attention | CrossAttnBlock):
            if isinstance(module, Attention):
                # timm marks it Final for TorchScript; it is read at every forward
                setattr(module, "fused_attn", enabled)  # noqa: B010
            else:
                module.fused = enabled
            switched += 1
    return switched


def fused_attention_count(model: nn.Module) -> tuple[int, int]:
    """(fused, all) attention modules of ``model``, as ``set_fused_attention`` counts them."""
    fused = total = 0
    for module in model.modules():
        if isinstance(module, Attention):
            fused, total = fused + bool(module.fused_attn), total + 1
        elif isinstance(module, CrossAttnBlock):
            fused, total = fused + bool(module.fused), total + 1
    return fused, total
