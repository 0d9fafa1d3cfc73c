"""Fused attention (scaled_dot_product_attention) in the student equals the explicit path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zeroseg.config import load_config
from zeroseg.models.attention import fused_attention_count, set_fused_attention
from zeroseg.models.build import build_zeroseg
from zeroseg.models.grouping import CrossAttnBlock
from zeroseg.training.losses import zeroseg_losses


def _student(preset: str):
    config = load_config(preset, ["teacher.pretrained=none"])
    torch.manual_seed(0)
    return config, build_zeroseg(config.encoder, config.seg_head, config.decoder)


def _loss_and_grads(config, student, images, views, fused: bool):
    set_fused_attention(student, fused)
    student.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same masks and Gumbel noise on both paths
    out = student(images, config.encoder.mask_ratio)
    losses = zeroseg_losses(
        config.loss,
        images=images,
        reconstruction=out.reconstruction,
        mask=out.mask,
        segments=out.segments.segment_embeddings,
        global_embedding=out.segments.global_embedding,
        views=views,
        patch_size=student.encoder.patch_size,
        student_normalize=student.encoder.normalize,
        soft_assignments=out.segments.soft_assignments,
    )
    losses["loss"].backward()
    grads = {name: p.grad.clone() for name, p in student.named_parameters() if p.grad is not None}
    return losses, out, grads


@pytest.mark.parametrize("preset", ["tiny", "synthetic"])
def test_fused_and_explicit_attention_give_the_same_losses_outputs_and_gradients(preset):
    config, student = _student(preset)
    student.train()
    size = config.encoder.image_size
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(4, 3, size, size, generator=generator)
    views = torch.randn(4, 30, config.seg_head.out_dim, generator=generator)
    keys = list(student.state_dict())
    fused = _loss_and_grads(config, student, images, views, fused=True)
    plain = _loss_and_grads(config, student, images, views, fused=False)
    assert list(student.state_dict()) == keys  # no weight renamed, added or removed
    for key in fused[0]:
        assert torch.allclose(fused[0][key], plain[0][key], atol=1e-5, rtol=1e-5), key
    a, b = fused[1].segments, plain[1].segments
    assert torch.allclose(a.segment_embeddings, b.segment_embeddings, atol=1e-5)
    for soft_a, soft_b in zip(a.soft_assignments, b.soft_assignments):
        assert torch.allclose(soft_a, soft_b, atol=1e-5)
    for hard_a, hard_b in zip(a.assignments, b.assignments):
        assert torch.equal(hard_a, hard_b)  # the same groups win
    assert fused[1].reconstruction is not None and plain[1].reconstruction is not None
    assert torch.allclose(fused[1].reconstruction, plain[1].reconstruction, atol=1e-5)
    assert fused[2].keys() == plain[2].keys()
    for name in fused[2]:
        assert torch.allclose(fused[2][name], plain[2][name], atol=1e-5, rtol=1e-4), name


def test_every_attention_of_the_student_runs_fused_by_default(monkeypatch):
    config, student = _student("tiny")
    fused, total = fused_attention_count(student)
    cross = sum(isinstance(m, CrossAttnBlock) for m in student.modules())
    blocks = config.encoder.depth + config.decoder.depth + sum(config.seg_head.depths)
    assert (fused, total) == (total, blocks + cross) and cross == 2
    calls = []
    original = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    size = config.encoder.image_size
    student(torch.rand(2, 3, size, size), config.encoder.mask_ratio)
    assert len(calls) == total  # every block and both cross-attentions, once each
    calls.clear()
    assert set_fused_attention(student, False) == total
    student(torch.rand(2, 3, size, size), config.encoder.mask_ratio)
    assert calls == []
