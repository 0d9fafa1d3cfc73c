"""SCLIP, ClearCLIP and NACLIP readouts, and PAMR, against re-derivations of the authors' code.

The references below follow the authors' computation as their repositories write it: OpenAI CLIP's
(L, B, C) token layout, heads folded into the batch for ``torch.bmm``, NACLIP's neighbourhood
Gaussian built by convolving one-hot patch maps with a Gaussian window, and PAMR's affinities from
3x3 convolution kernels (1-stage-wseg's ``LocalAffinity`` family). The library computes the same
things in its own way; equal outputs on a random-weight ViT are the check.
"""

from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from zeroseg.cli import main
from zeroseg.errors import ZeroSegError
from zeroseg.inference.pamr import pamr
from zeroseg.inference.readout_segmenter import DenseCLIPSegmenter
from zeroseg.inference.segmenter import InferenceConfig
from zeroseg.models.dense_readout import NACLIP_STD, dense_features
from zeroseg.models.teacher import CLIPTeacher


@pytest.fixture(scope="module")
def teacher() -> CLIPTeacher:
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=24,
        vision_cfg=open_clip.model.CLIPVisionCfg(
            layers=3, width=48, head_width=16, patch_size=8, image_size=48
        ),
        text_cfg=open_clip.model.CLIPTextCfg(
            context_length=16, vocab_size=49408, width=32, heads=2, layers=1
        ),
    )
    for p in clip.parameters():  # random weights with some scale, so attention is not uniform
        p.data.add_(torch.randn_like(p) * 0.05)
    return CLIPTeacher(clip, open_clip.tokenizer.SimpleTokenizer(context_length=16))


def _gaussian_window(dims, std):
    """NACLIP's construction: a (2h-1, 2w-1) Gaussian centred at the middle, peak 1."""
    axes = []
    for dim in dims:
        start = -(dim - 1)
        constant = 1 / (std * math.sqrt(2))
        axes.append(torch.linspace(start * constant, (dim - 1) * constant, 2 * dim - 1))
    dist = axes[0][:, None] ** 2 + axes[1][None, :] ** 2
    return torch.exp(-dist)


def _naclip_omega(dims, std):
    n = dims[0] * dims[1]
    maps = torch.eye(n).view(n, 1, *dims)
    window = _gaussian_window(dims, std)[None, None]
    out = F.conv2d(maps, window, padding="same").view(n, n)
    return F.pad(out, (1, 0, 1, 0))  # the class token's row and column are 0


def _authors_last_block(block, x, method, dims):
    """x: (L, B, C) as the authors' code holds it -> the last block's output (L, B, C)."""
    attn = block.attn
    num_heads = attn.num_heads
    _, bsz, embed_dim = x.size()
    head_dim = embed_dim // num_heads
    scale = head_dim**-0.5
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q = q.contiguous().view(-1, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.contiguous().view(-1, bsz * num_heads, head_dim).transpose(0, 1)
    v = v.contiguous().view(-1, bsz * num_heads, head_dim).transpose(0, 1)
    if method == "sclip":
        q_attn = torch.bmm(q, q.transpose(1, 2)) * scale
        k_attn = torch.bmm(k, k.transpose(1, 2)) * scale
        weights = F.softmax(q_attn, dim=-1) + F.softmax(k_attn, dim=-1)
    elif method == "clearclip":
        weights = F.softmax(torch.bmm(q, q.transpose(1, 2)) * scale, dim=-1)
    else:
        weights = torch.bmm(k, k.transpose(1, 2)) * scale + _naclip_omega(dims, NACLIP_STD)
        weights = F.softmax(weights, dim=-1)
    out = torch.bmm(weights, v).transpose(0, 1).contiguous().view(-1, bsz, embed_dim)
    out = attn.out_proj(out)
    if method != "sclip":
        return out
    x = x + out
    return x + block.mlp(block.ln_2(x))


def _authors_dense(teacher, images, method):
    visual = teacher.clip.visual
    x = visual._embeds(teacher.normalize(images))  # (B, L, C): patches, class token, ln_pre
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    dims = (images.shape[-2] // 8, images.shape[-1] // 8)
    x = _authors_last_block(visual.transformer.resblocks[-1], x.permute(1, 0, 2), method, dims)
    x = x.permute(1, 0, 2)
    return visual.ln_post(x)[:, 1:] @ visual.proj  # (B, N, D)


@pytest.mark.parametrize("method", ["sclip", "clearclip", "naclip"])
def test_readouts_equal_the_authors_computation(teacher, method):
    images = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    ours = dense_features(teacher.clip.visual, teacher.normalize(images), readout=method)
    reference = _authors_dense(teacher, images, method)
    assert torch.allclose(ours.flatten(2).transpose(1, 2), reference, atol=1e-5)
    other = "clearclip" if method != "clearclip" else "sclip"
    different = dense_features(teacher.clip.visual, teacher.normalize(images), readout=other)
    assert not torch.allclose(ours, different, atol=1e-3)  # the readouts really differ


def test_naclip_neighbourhood_on_a_non_square_grid(teacher):
    from zeroseg.models.dense_readout import neighbourhood_bias

    omega = neighbourhood_bias((3, 5), 5.0)
    assert torch.allclose(omega, _naclip_omega((3, 5), 5.0), atol=1e-6)
    assert omega[1 + 0, 1 + 4] == pytest.approx(math.exp(-16 / 50))  # (0,0) to (0,4): 4 apart


def _pamr_reference(image, mask, steps, dilations):
    """1-stage-wseg's PAMR: affinities and copies from 3x3 conv kernels per dilation."""

    def kernels():
        """The 9 one-hot 3x3 kernels, raster order (index 4 is the centre)."""
        return torch.eye(9).view(9, 1, 3, 3)

    def local(x, kernel):
        b, k, h, w = x.shape
        x = x.reshape(b * k, 1, h, w)
        out = [F.conv2d(F.pad(x, [d] * 4, mode="replicate"), kernel, dilation=d) for d in dilations]
        return torch.cat(out, 1).view(b, k, -1, h, w)

    ring = kernels()[[0, 1, 2, 3, 5, 6, 7, 8]]  # copies of the 8 neighbours
    diff = -ring.clone()
    diff[:, 0, 1, 1] = 1.0  # centre minus neighbour
    std = local(image, kernels()).std(2, keepdim=True)
    x = -local(image, diff).abs() / (1e-8 + 0.1 * std)
    x = F.softmax(x.mean(1, keepdim=True), 2)
    for _ in range(steps):
        mask = (local(mask, ring) * x).sum(2)
    return mask


def test_pamr_equals_the_reference():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 37, 29, generator=generator)
    image[:, :, 10:20, 5:15] += 0.8
    scores = torch.rand(1, 4, 37, 29, generator=generator)
    ours = pamr(image, scores, steps=3, dilations=(1, 2, 8))
    assert torch.allclose(ours, _pamr_reference(image, scores, 3, (1, 2, 8)), atol=1e-5)
    probs = scores.softmax(1)  # neighbour weights sum to one: probabilities stay probabilities
    assert torch.allclose(pamr(image, probs, steps=3).sum(1), torch.ones(1, 37, 29), atol=1e-5)
    assert torch.equal(pamr(image, scores, steps=0), scores)


def test_readout_segmenters_and_pamr_option(teacher):
    image = torch.rand(3, 40, 56)
    for method in ("maskclip", "sclip", "clearclip", "naclip"):
        for steps in (0, 2):
            config = InferenceConfig(short_side=0, mode="slide", window=32, stride=16,
                                     templates="simple1", pamr_steps=steps)  # fmt: skip
            segmenter = DenseCLIPSegmenter(teacher, config, readout=method)
            segmenter.set_vocabulary(["a", "b", "c"], background=True)
            result = segmenter.predict(image)
            assert result.labels.shape == (40, 56) and torch.isfinite(result.scores).all()


def test_resnet_teacher_has_only_the_maskclip_readout():
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=(1, 1, 1, 1), width=8, image_size=64),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=16, width=32, heads=2, layers=1),
    )
    with pytest.raises(ZeroSegError, match="needs a ViT teacher"):
        dense_features(clip.visual, torch.rand(1, 3, 64, 64), readout="sclip")


def test_cli_methods_and_protocols(tmp_path, tiny_run, capsys):
    from PIL import Image

    image = tmp_path / "x.png"
    Image.fromarray((np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)).save(
        image
    )
    for method in ("sclip", "naclip"):
        out = tmp_path / method
        code = main(["segment", str(image), "--method", method, "--checkpoint", str(tiny_run),
                     "--classes", "a, b", "--out", str(out), "--no-progress",
                     "--set", "short_side=32", "--set", "pamr_steps=2"])  # fmt: skip
        assert code == 0 and Image.open(out / "x.png").size == (48, 40)
    from zeroseg.benchmark.protocols import protocol_config

    naclip, flavour = protocol_config("naclip", "voc")
    assert (naclip.mode, naclip.pamr_steps, naclip.logit_scale, flavour) == (
        "whole",
        10,
        40.0,
        "sclip",
    )
    assert protocol_config("naclip", "context")[0].mode == "slide"
    clear = protocol_config("clearclip", "coco-object")[0]
    assert (clear.window, clear.short_side, clear.bg_threshold) == (448, 448, 0.4)
