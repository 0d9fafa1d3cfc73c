"""SCLIP, ClearCLIP and NACLIP readouts, and PAMR, against re-derivations of the authors' code.

The references below follow the authors' computation as their repositories write it: OpenAI CLIP's
(L, B, C) token layout, heads folded into the batch for ``torch.bmm``, NACLIP's neighbourhood
Gaussian built by convolving one-hot patch maps with a Gaussian window, and PAMR's affinities from
3x3 convolution kernels (1-stage-wseg's ``LocalAffinity`` family). The library computes the same
things in its own way; equal outputs on a random-weight ViT are the check.
"""

from __future__ import annotations

import math
from dataclasses import replace

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


# ---------------------------------------------------------------------------------------------
# The authors' whole pipelines (SCLIP's ``clip_segmentor.py``, ClearCLIP's
# ``clearclip_segmentor.py``, NACLIP's ``naclip.py``), re-derived on a patch-16 tower with a
# 14x14 position grid (ViT-B/16's geometry), against ``--method M`` under protocol M.
# ---------------------------------------------------------------------------------------------

AUTHOR_MEAN = torch.tensor([122.771, 116.746, 104.094]).view(1, 3, 1, 1)
AUTHOR_STD = torch.tensor([68.501, 66.632, 70.323]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def teacher16() -> CLIPTeacher:
    torch.manual_seed(1)
    clip = open_clip.CLIP(
        embed_dim=24,
        vision_cfg=open_clip.model.CLIPVisionCfg(
            layers=2, width=64, head_width=16, patch_size=16, image_size=224
        ),
        text_cfg=open_clip.model.CLIPTextCfg(
            context_length=16, vocab_size=49408, width=32, heads=2, layers=1
        ),
    )
    for p in clip.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    return CLIPTeacher(clip, open_clip.tokenizer.SimpleTokenizer(context_length=16)).eval()


def _authors_positions(visual, rows, cols):
    """``interpolate_pos_encoding``: kept when the token count matches, else bicubic by the
    factors (n + 0.1) / sqrt(N)."""
    pos = visual.positional_embedding
    n = pos.shape[0] - 1
    if rows * cols == n:
        return pos
    side = int(math.sqrt(n))
    grid = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side),
                         mode="bicubic", align_corners=False, recompute_scale_factor=False)  # fmt: skip
    assert grid.shape[-2:] == (rows, cols)
    return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(rows * cols, -1)])


def _by_size_positions(visual, rows, cols):
    pos = visual.positional_embedding
    side = int(math.sqrt(pos.shape[0] - 1))
    if (rows, cols) == (side, side):
        return pos
    grid = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
    return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(rows * cols, -1)])


def _authors_tokens(visual, pixels, method, attention="qq"):
    """(1, 3, h, w) normalised pixels -> (gh*gw, D) patch embeddings, the authors' forward."""
    x = visual.conv1(pixels)  # the stride-16 convolution drops a remainder
    rows, cols = x.shape[-2:]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.view(1, 1, -1), x], 1)
    positions = _by_size_positions if method == "maskclip" else _authors_positions
    x = visual.ln_pre(x + positions(visual, rows, cols))
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    last = visual.transformer.resblocks[-1]
    x = x.permute(1, 0, 2)
    width, heads = x.shape[-1], last.attn.num_heads
    if method == "maskclip":  # the value path alone
        weight, bias = last.attn.in_proj_weight[2 * width :], last.attn.in_proj_bias[2 * width :]
        x = last.attn.out_proj(F.linear(last.ln_1(x), weight, bias))
    elif method == "clearclip" and attention == "qk":  # the released config's model_type='vanilla'
        y = last.ln_1(x)
        q, k, v = F.linear(y, last.attn.in_proj_weight, last.attn.in_proj_bias).chunk(3, -1)
        q, k, v = (
            t.contiguous().view(-1, heads, width // heads).transpose(0, 1) for t in (q, k, v)
        )
        weights = F.softmax(torch.bmm(q, k.transpose(1, 2)) * (width // heads) ** -0.5, -1)
        x = last.attn.out_proj(torch.bmm(weights, v).transpose(0, 1).reshape(-1, 1, width))
    else:
        x = _authors_last_block(last, x, method, (rows, cols))
    x = visual.ln_post(x.permute(1, 0, 2)) @ visual.proj
    return x[0, 1:], (rows, cols)


def _authors_feature(visual, crop, method, queries, pad_zero_centred, attention):
    """``forward_feature``: cosine logits at the crop's size -> (1, Q, h, w)."""
    h, w = crop.shape[-2:]
    top = left = 0
    if pad_zero_centred and (h % 16 or w % 16):  # ClearCLIP's compute_padsize
        pad_h, pad_w = (16 - h % 16) % 16, (16 - w % 16) % 16
        top, left = pad_h // 2, pad_w // 2
        crop = F.pad(crop, (left, pad_w - left, top, pad_h - top))
    tokens, (rows, cols) = _authors_tokens(visual, crop, method, attention)
    tokens = tokens / tokens.norm(dim=-1, keepdim=True)
    logits = (tokens @ queries.T).T.reshape(1, -1, rows, cols)
    logits = F.interpolate(logits, size=crop.shape[-2:], mode="bilinear", align_corners=False)
    return logits[:, :, top : top + h, left : left + w]


def _authors_pipeline(teacher, image, method, cfg, vocab, attention="qq"):
    """(3, H, W) [0,1] image -> (num_cls, H, W) scores and (H, W) labels, as the authors' code."""
    from zeroseg.inference.segmenter import resize_short_side

    visual = teacher.clip.visual
    names, owner = [], []  # the class-name file's order: background line first
    for index, entry in enumerate(vocab.class_names):
        line = vocab.background_words if (index == 0 and vocab.has_background) else entry
        names += list(line)
        owner += [index] * len(line)
    from zeroseg.inference.prompts import get_templates

    queries = teacher.build_classifier([[n] for n in names], get_templates(cfg.templates))
    size = image.shape[-2:]
    resized = resize_short_side(image[None].float(), cfg) * 255  # the 8-bit image, mmcv-resized
    img = (resized - AUTHOR_MEAN) / AUTHOR_STD
    zeros = method == "clearclip"
    if cfg.mode == "whole":  # NACLIP: to the resized image, then to the original
        logits = _authors_feature(visual, img, method, queries, zeros, attention)
    else:
        _, _, hi, wi = img.shape
        preds, count = torch.zeros(1, len(names), hi, wi), torch.zeros(1, 1, hi, wi)
        crop, stride = cfg.window, cfg.stride
        for r in range(max(hi - crop + stride - 1, 0) // stride + 1):
            for c in range(max(wi - crop + stride - 1, 0) // stride + 1):
                y2, x2 = min(r * stride + crop, hi), min(c * stride + crop, wi)
                y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
                out = _authors_feature(visual, img[:, :, y1:y2, x1:x2], method, queries, zeros,
                                       attention)  # fmt: skip
                preds += F.pad(out, (x1, wi - x2, y1, hi - y2))
                count[:, :, y1:y2, x1:x2] += 1
        logits = preds / count
    logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    if cfg.pamr_steps:
        guide = F.interpolate(img, size=size, mode="bilinear", align_corners=False)
        logits = _pamr_reference(guide, logits, cfg.pamr_steps, cfg.pamr_dilations)
    probs = (logits[0] * cfg.logit_scale).softmax(0)
    num_cls = max(owner) + 1
    one_hot = F.one_hot(torch.tensor(owner)).T.view(num_cls, len(owner), 1, 1)
    probs = (probs[None] * one_hot).max(1)[0]
    if cfg.area_threshold:
        predicted = F.one_hot(probs.argmax(0), num_cls).to(probs.dtype)
        area = predicted[:, :, 1:].sum((0, 1), keepdim=True)
        area = (area > cfg.area_threshold * area.sum()).to(probs.dtype)
        probs[1:] *= area.transpose(0, -1)
    labels = probs.argmax(0)
    labels[probs.max(0)[0] < cfg.bg_threshold] = 0
    return probs, labels


AGREEMENT_CASES = [  # method, dataset (its protocol's settings there)
    ("sclip", "voc"),  # VOC21: logit scale 65, area threshold, 26 background words
    ("sclip", "context59"),
    ("clearclip", "voc"),
    ("naclip", "voc"),  # the whole image
    ("naclip", "context"),
    ("maskclip", "voc20"),
]


def agreement(teacher, method, dataset, size, pamr_steps, **changes):
    """Our ``--method M`` pipeline and the authors' on one seeded image: (max |score diff|,
    labels equal, the authors' scores)."""
    from zeroseg.benchmark.protocols import protocol_config
    from zeroseg.benchmark.vocabularies import load_vocabulary

    config, flavour = protocol_config(method, dataset)
    config = replace(config, templates="simple1", pamr_steps=pamr_steps, **changes)
    vocab = load_vocabulary(dataset, flavour)
    generator = torch.Generator().manual_seed(sum(size))
    image = torch.rand(3, *size, generator=generator)
    image[:, size[0] // 3 : size[0] // 2, size[1] // 4 : size[1] // 2] += 0.6
    image = (image.clamp(0, 1) * 255).round() / 255  # an 8-bit image, as a decoded file
    segmenter = DenseCLIPSegmenter(teacher, config, readout=method)
    vocab.apply_to(segmenter)
    result = segmenter.predict(image)
    attention = config.clearclip_attention
    scores, labels = _authors_pipeline(teacher, image, method, segmenter.config, vocab, attention)
    diff = float((result.scores - scores).abs().max())
    return diff, bool(torch.equal(result.labels, labels)), scores


@pytest.mark.parametrize("method, dataset", AGREEMENT_CASES)
@pytest.mark.parametrize("size", [(448, 448), (336, 500)])
def test_protocol_pipelines_equal_the_authors(teacher16, method, dataset, size):
    for steps in (0, 3) if method in ("naclip", "sclip") else (0,):
        diff, same, scores = agreement(teacher16, method, dataset, size, steps)
        assert diff < 1e-5 and same, (method, dataset, size, steps, diff)
        assert scores.flatten(1).std(1).max() > 1e-3  # not a comparison of constant maps


def test_clearclip_released_config_and_remainders(teacher16):
    """The released config's q.k readout, and windows with a patch remainder (ClearCLIP pads
    with zeros, centred; SCLIP and NACLIP drop it and stretch the logits)."""
    for method in ("clearclip", "sclip", "naclip"):
        changes = {"short_side": 0, "window": 200, "stride": 100, "mode": "slide"}
        diff, same, _ = agreement(teacher16, method, "voc", (230, 347), 0, **changes)
        assert diff < 1e-5 and same, (method, diff)
    diff, same, _ = agreement(teacher16, "clearclip", "voc", (336, 500), 0,
                              clearclip_attention="qk")  # fmt: skip
    assert diff < 1e-5 and same, diff


def test_authors_positions_differ_from_resampling_by_size(teacher16):
    from zeroseg.models.dense_readout import resample_positions

    visual = teacher16.clip.visual
    pos = visual.positional_embedding
    for grid in ((28, 28), (21, 31), (14, 14), (7, 28)):
        ours = resample_positions(pos, (14, 14), grid, "scale")
        assert torch.equal(ours, _authors_positions(visual, *grid))
        by_size = resample_positions(pos, (14, 14), grid, "size")
        assert torch.equal(by_size, _by_size_positions(visual, *grid)) or grid == (7, 28)
    assert not torch.allclose(
        resample_positions(pos, (14, 14), (21, 31), "scale"),
        resample_positions(pos, (14, 14), (21, 31), "size"),
        atol=1e-4,
    )


def test_precision_is_fp32_on_a_cpu(teacher16, caplog):
    config = InferenceConfig(short_side=0, mode="whole", templates="simple1", merge="logits",
                             precision="fp16")  # fmt: skip
    segmenter = DenseCLIPSegmenter(teacher16, config, readout="sclip")
    segmenter.set_vocabulary(["a", "b"])
    image = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(0))
    with caplog.at_level("INFO"):
        half = segmenter.predict(image)
    assert "needs CUDA" in caplog.text
    full = segmenter.with_config(precision="fp32").predict(image)
    assert half.scores.dtype == torch.float32 and torch.equal(half.scores, full.scores)
    from zeroseg.config import resolve_config

    with pytest.raises(ZeroSegError, match="precision"):
        resolve_config(InferenceConfig, overrides=["precision=fp64"])
