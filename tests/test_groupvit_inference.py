"""The ``groupvit`` and ``zeroseg`` protocols against an independent re-derivation of GroupViT.

``groupvit_encode_decode`` restates, step by step, GroupViT's released
``GroupViTSegInference.encode_decode`` (segmentation/evaluation/group_vit_seg.py) and
``slide_whole`` restates mmseg's ``EncoderDecoder.slide_inference``; neither calls zeroseg's
inference code. A random tiny student and teacher with more than five classes (so the top-5 step
masks classes) must give the same label maps through ``Segmenter.predict``.
"""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from zeroseg.benchmark.protocols import protocol_config
from zeroseg.inference.segmenter import Segmenter

CLASSES = ["red", "green", "blue", "sky", "grass", "square", "circle", "wood"]


def groupvit_encode_decode(model, text, window, with_bg, bg_thresh, logit_scale):
    """GroupViT's encode_decode for one (1, 3, h, w) window -> (C, h, w) logits."""
    out, (gh, gw) = model.encode_segments(window)
    attn = None
    for soft in out.soft_assignments:  # get_attn_maps: 'soft' maps chained stage by stage
        attn = soft if attn is None else attn @ soft
    groups = attn.shape[-1]
    maps = attn.transpose(1, 2).reshape(1, groups, gh, gw)  # resize_attn_map
    maps = F.interpolate(maps, size=window.shape[-2:], mode="bilinear", align_corners=False)
    attn_map = maps[0].permute(1, 2, 0)  # (h, w, G)
    grouped = F.normalize(out.segment_embeddings[0], dim=-1)
    average = F.normalize(out.global_embedding, dim=-1)
    onehot = F.one_hot(attn_map.argmax(dim=-1), num_classes=groups).to(attn_map.dtype)
    num_fg = text.shape[0]
    offset = 1 if with_bg else 0
    affinity = (grouped @ text.T) * logit_scale
    pre_affinity = F.softmax(affinity, dim=-1)
    average_affinity = F.softmax((average @ text.T) * logit_scale, dim=-1)
    keep = torch.zeros_like(average_affinity)
    top = average_affinity.topk(dim=-1, k=min(5, num_fg))
    keep.scatter_add_(dim=-1, index=top.indices, src=torch.ones_like(top.values))
    affinity = affinity.masked_fill(~keep.bool(), float("-inf"))
    affinity = F.softmax(affinity, dim=-1) * pre_affinity
    logits = torch.zeros(num_fg + offset, *attn_map.shape[:2])
    logits[offset:] = (onehot @ affinity).permute(2, 0, 1)
    if with_bg:
        threshold = min(bg_thresh, affinity.max().item())
        logits[0, (onehot @ affinity).max(dim=-1).values < threshold] = 1
    return logits


def slide_whole(image, crop, stride, decode):
    """mmseg's slide_inference over a (1, 3, H, W) image -> (C, H, W)."""
    _, _, height, width = image.shape
    rows = max(height - crop + stride - 1, 0) // stride + 1
    cols = max(width - crop + stride - 1, 0) // stride + 1
    preds, count = None, torch.zeros(1, height, width)
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + crop, height), min(c * stride + crop, width)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            logits = decode(image[:, :, y1:y2, x1:x2])
            if preds is None:
                preds = torch.zeros(logits.shape[0], height, width)
            preds += F.pad(logits, (x1, width - x2, y1, height - y2))
            count[:, y1:y2, x1:x2] += 1
    return preds / count


@pytest.fixture(scope="module")
def student(tiny_run):
    return Segmenter.from_checkpoint(tiny_run)


@pytest.mark.parametrize("protocol", ["groupvit", "zeroseg"])
@pytest.mark.parametrize("dataset", ["voc", "context", "context59"])
def test_protocols_reproduce_groupvit_label_maps(student, protocol, dataset):
    config, _ = protocol_config(protocol, dataset)
    assert config.top_k_classes == 5 and config.mode == "slide"
    # the protocol at the tiny model's scale: 64 px short side, 64 px windows, stride 32
    config = replace(config, short_side=64, window=64, stride=32)
    segmenter = student.with_config(**config.__dict__)
    with_bg = dataset != "context59"
    segmenter.set_vocabulary(CLASSES, background=with_bg)
    text = segmenter.vocabulary.text
    torch.manual_seed(1)
    labels_seen = set()
    shapes = [(3, 64, 100), (3, 90, 64)] * 3  # short side 64: no resize, three windows
    for shape in shapes:
        image = torch.rand(*shape)
        ours = segmenter.predict(image).labels
        labels_seen |= set(ours.unique().tolist())

        def decode(window):
            return groupvit_encode_decode(
                segmenter.model, text, window, with_bg, config.bg_threshold, config.logit_scale
            )

        with torch.no_grad():
            reference = slide_whole(image[None], 64, 32, decode).argmax(0)
        assert torch.equal(ours, reference), (protocol, dataset, shape)
    if dataset != "voc":  # VOC's 0.95 threshold leaves a random model all background
        assert len(labels_seen) > 1  # not one label everywhere: the check is not trivial


def test_without_the_top_k_step_labels_differ_from_groupvit(student):
    """The check above can fail: dropping the top-5 step (the old zeroseg protocol) changes labels."""
    config, _ = protocol_config("zeroseg", "context")
    config = replace(config, short_side=64, window=64, stride=32, top_k_classes=0)
    segmenter = student.with_config(**config.__dict__)
    segmenter.set_vocabulary(CLASSES, background=True)
    torch.manual_seed(1)
    image = torch.rand(1, 3, 64, 100)

    def decode(window):
        return groupvit_encode_decode(
            segmenter.model, segmenter.vocabulary.text, window, True, config.bg_threshold, 100.0
        )

    with torch.no_grad():
        reference = slide_whole(image, 64, 32, decode).argmax(0)
    assert not torch.equal(segmenter.predict(image[0]).labels, reference)
