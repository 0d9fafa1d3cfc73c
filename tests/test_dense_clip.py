"""DenseCLIPSegmenter on a tiny real open_clip CLIP: value readout, geometry, API, evaluate()."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import open_clip
import pytest
import torch
from torch import nn

from zeroseg.errors import ZeroSegError
from zeroseg.inference.readout_segmenter import DenseCLIPSegmenter
from zeroseg.inference.segmenter import InferenceConfig, SegmentationResult, slide_windows
from zeroseg.models.teacher import CLIPTeacher

CONFIG = InferenceConfig(short_side=0, mode="whole", window=32, stride=16, templates="simple1")


@pytest.fixture(scope="module")
def teacher() -> CLIPTeacher:
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=open_clip.model.CLIPVisionCfg(
            layers=2, width=32, head_width=16, patch_size=8, image_size=32
        ),
        text_cfg=open_clip.model.CLIPTextCfg(
            context_length=16, vocab_size=49408, width=32, heads=2, layers=1
        ),
    )
    return CLIPTeacher(clip, open_clip.tokenizer.SimpleTokenizer(context_length=16))


def _reference_tokens(teacher: CLIPTeacher, images: torch.Tensor, residual: bool) -> torch.Tensor:
    """open_clip's own forward with the last block's attention forced to the identity (each token
    attends only to itself), which is exactly the value path -> (N, D) patch embeddings."""
    visual = teacher.clip.visual
    x = visual._embeds(teacher.normalize(images))
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    last = visual.transformer.resblocks[-1]
    n = x.shape[1]
    mask = torch.full((n, n), float("-inf")).fill_diagonal_(0.0)
    if residual:
        x = last(x, attn_mask=mask)
    else:
        x = last.ls_1(last.attention(last.ln_1(x), attn_mask=mask))
    return (visual.ln_post(x[:, 1:]) @ visual.proj)[0]


@pytest.mark.parametrize("residual", [False, True])
def test_value_readout_equals_identity_attention(teacher, residual):
    image = torch.rand(1, 3, 32, 32)
    segmenter = DenseCLIPSegmenter(teacher, CONFIG, residual=residual)
    features = segmenter.dense_features(image)  # (D, 4, 4)
    assert features.shape == (32, 4, 4)
    expected = _reference_tokens(teacher, image, residual)  # (16, D)
    assert torch.allclose(features.flatten(1).T, expected, atol=1e-5)
    visual = teacher.clip.visual
    x = visual.transformer(visual._embeds(teacher.normalize(image)))
    normal = (visual.ln_post(x[:, 1:]) @ visual.proj)[0]  # with query-key attention
    assert not torch.allclose(features.flatten(1).T, normal, atol=1e-3)


def test_predict_shapes_background_and_names(teacher):
    segmenter = DenseCLIPSegmenter(teacher, CONFIG)
    segmenter.set_vocabulary(["cat", ["dog", "puppy"]], background=True, background_words=["sky"])
    image = torch.rand(3, 37, 50)  # not a multiple of the patch size: padded, pos-embed resampled
    result = segmenter.predict(image)
    assert isinstance(result, SegmentationResult)
    assert result.labels.shape == (37, 50) and result.labels.dtype == torch.int64
    assert result.scores.shape == (3, 37, 50)
    assert result.class_names == ["background", "cat", "dog"]
    assert torch.equal(result.labels, result.scores.argmax(0))


def test_background_threshold_and_top_k(teacher):
    image = torch.rand(3, 32, 32)
    none = DenseCLIPSegmenter(teacher, replace(CONFIG, bg_threshold=0.0))
    none.set_vocabulary(["cat", "dog", "car"], background=True)
    assert (none.predict(image).labels > 0).all()  # threshold 0: nothing is background
    high = none.with_config(bg_threshold=1.0)  # capped at the best score: some background
    labels = high.predict(image).labels
    assert (labels == 0).any() and (labels > 0).any()
    top1 = none.with_config(top_k_classes=1)
    top1.set_vocabulary(["cat", "dog", "car"])
    assert top1.predict(image).labels.unique().numel() == 1


def test_slide_equals_whole_when_one_window_covers_the_image(teacher):
    whole = DenseCLIPSegmenter(teacher, CONFIG)
    whole.set_vocabulary(["cat", "dog"])
    slide = whole.with_config(mode="slide", window=48, stride=24)
    image = torch.rand(3, 40, 48)
    assert torch.allclose(whole.predict(image).scores, slide.predict(image).scores, atol=1e-6)
    assert slide_windows(40, 48, 32, 16) == [
        (0, 32, 0, 32), (0, 32, 16, 48), (8, 40, 0, 32), (8, 40, 16, 48),
    ]  # fmt: skip


def test_short_side_resize_keeps_output_at_input_size(teacher):
    segmenter = DenseCLIPSegmenter(teacher, replace(CONFIG, short_side=16))
    segmenter.set_vocabulary(["cat", "dog"])
    assert segmenter.predict(torch.rand(3, 40, 60)).labels.shape == (40, 60)


def test_non_vit_tower_and_missing_vocabulary_are_errors(teacher):
    fake = SimpleNamespace(clip=SimpleNamespace(visual=nn.Identity()))
    with pytest.raises(ZeroSegError, match="VisionTransformer or ModifiedResNet, got Identity"):
        DenseCLIPSegmenter(fake)
    with pytest.raises(ZeroSegError, match="call set_vocabulary first"):
        DenseCLIPSegmenter(teacher, CONFIG).predict(torch.rand(3, 8, 8))


def test_evaluate_runs_on_the_dense_baseline(teacher, tmp_path):
    from test_segmentation_data import make_masks, write_voc_tree

    from zeroseg.benchmark.datasets import build_dataset
    from zeroseg.benchmark.evaluation import evaluate
    from zeroseg.benchmark.vocabularies import load_vocabulary

    root = write_voc_tree(tmp_path / "data", make_masks(2, 21))
    config = replace(CONFIG, short_side=32, mode="slide", window=32, stride=16)
    segmenter = DenseCLIPSegmenter(teacher, config)
    results = evaluate(
        segmenter, build_dataset("voc", root), out_dir=tmp_path / "out",
        vocabulary=load_vocabulary("voc", "sclip"), progress=False,
    )  # fmt: skip
    assert 0.0 <= results["aacc"] <= 100.0 and len(results["per_class"]) == 21
    assert (tmp_path / "out" / "results.json").is_file()


def test_resnet_readout_is_maskclips_value_and_output_projection():
    """MaskCLIP's ResNet head: 1x1 convolutions with the attention pool's v_proj and c_proj over
    the last feature map (no positional embedding), the trunk run as open_clip runs it."""
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=open_clip.model.CLIPVisionCfg(
            layers=(1, 1, 1, 1), width=8, head_width=16, image_size=64
        ),
        text_cfg=open_clip.model.CLIPTextCfg(
            context_length=16, vocab_size=49408, width=32, heads=2, layers=1
        ),
    ).eval()
    teacher = CLIPTeacher(clip, open_clip.tokenizer.SimpleTokenizer(context_length=16))
    segmenter = DenseCLIPSegmenter(teacher, CONFIG)
    assert segmenter.dense_features(torch.rand(1, 3, 64, 96)).shape == (16, 2, 3)  # stride 32
    image = torch.rand(1, 3, 64, 64)  # the size the attention pool's positions were made for
    features = segmenter.dense_features(image)
    visual = clip.visual
    trunk = {}
    hook = visual.layer4.register_forward_hook(lambda m, i, o: trunk.setdefault("x", o))
    with torch.no_grad():
        visual(teacher.normalize(image))
    hook.remove()
    pool = visual.attnpool
    v = nn.Conv2d(pool.v_proj.in_features, pool.v_proj.out_features, 1)
    c = nn.Conv2d(pool.c_proj.in_features, pool.c_proj.out_features, 1)
    v.weight.data, v.bias.data = pool.v_proj.weight.data[..., None, None], pool.v_proj.bias.data
    c.weight.data, c.bias.data = pool.c_proj.weight.data[..., None, None], pool.c_proj.bias.data
    with torch.no_grad():
        expected = c(v(trunk["x"]))[0]
    assert torch.allclose(features, expected, atol=1e-5)
    segmenter.set_vocabulary(["a", "b", "c"])
    result = segmenter.predict(torch.rand(3, 40, 50))
    assert result.labels.shape == (40, 50)
