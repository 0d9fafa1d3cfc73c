"""evaluate() end to end on a fake VOC tree with a small deterministic segmenter."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from test_segmentation_data import COLORS, make_masks, write_voc_tree

from zeroseg.benchmark.datasets import VOCSegmentation
from zeroseg.benchmark.evaluation import benchmark_settings, evaluate, file_sha256
from zeroseg.benchmark.protocols import protocol_config
from zeroseg.benchmark.vocabularies import load_vocabulary
from zeroseg.errors import ZeroSegError


@dataclass
class Result:  # the fields of zeroseg.inference.segmenter.SegmentationResult that evaluate() reads
    labels: torch.Tensor
    scores: torch.Tensor
    class_names: list[str]


class ColourSegmenter:
    """Labels each pixel with the class whose colour is nearest; confuses class 3 with 4 on purpose."""

    def set_vocabulary(self, class_names, background=False, background_words=()):
        names = [c if isinstance(c, str) else c[0] for c in class_names]
        self.names = (["background"] if background else []) + names

    def predict(self, image: torch.Tensor) -> Result:
        colours = torch.from_numpy(COLORS[: len(self.names)]).float() / 255  # (K, 3)
        distance = (image.permute(1, 2, 0)[:, :, None, :] - colours).square().sum(-1)  # (H, W, K)
        labels = distance.argmin(-1)
        labels[labels == 3] = 4
        scores = torch.nn.functional.one_hot(labels, len(self.names)).permute(2, 0, 1).float()
        return Result(labels, scores, list(self.names))


def _reference_miou(masks, preds, num_classes):
    """mmseg's mIoU written out with numpy (dataset-level sums, 255 ignored, NaN skipped)."""
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    for mask, pred in zip(masks, preds):
        keep = mask != 255
        m, p = mask[keep].astype(int), pred[keep].astype(int)
        for c in range(num_classes):
            inter[c] += ((m == c) & (p == c)).sum()
            union[c] += ((m == c) | (p == c)).sum()
    with np.errstate(invalid="ignore"):
        iou = inter / union
    return 100 * np.nanmean(iou), 100 * iou


@pytest.fixture
def voc(tmp_path):
    masks = make_masks(3, 21, seed=7)
    masks[0][:4, :4] = 3  # make sure the confused class occurs
    return write_voc_tree(tmp_path / "data", masks), masks


def test_evaluate_matches_reference_and_writes_results(tmp_path, voc):
    root, masks = voc
    dataset = VOCSegmentation(root)
    segmenter = ColourSegmenter()
    vocab = load_vocabulary("voc")
    config, _ = protocol_config("zeroseg", "voc")
    settings = benchmark_settings("zeroseg", "voc", config, vocab, teacher="tiny")
    out = tmp_path / "out"
    results = evaluate(
        segmenter, dataset, out_dir=out, vocabulary=vocab, settings=settings, progress=False,
        save_predictions=True,
    )  # fmt: skip
    preds = [np.where(m == 3, 4, m) for m in masks]
    for name, pred in zip(dataset.names, preds):
        png = Image.open(out / "predictions" / f"{name}.png")
        assert png.mode == "P"
        keep = masks[dataset.names.index(name)] != 255
        assert np.array_equal(np.asarray(png)[keep], pred[keep])
    saved = [np.asarray(Image.open(out / "predictions" / f"{n}.png")) for n in dataset.names]
    miou, per_class = _reference_miou(masks, saved, 21)
    assert results["miou"] == pytest.approx(miou, abs=1e-6)
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["miou"] == pytest.approx(miou, abs=1e-6)
    assert list(on_disk["per_class"]) == dataset.class_names
    for name, iou in zip(dataset.class_names, per_class):
        if math.isnan(iou):
            assert on_disk["per_class"][name] is None
        else:
            assert on_disk["per_class"][name] == pytest.approx(iou, abs=1e-6)
    assert on_disk["per_class"]["bird"] == 0.0  # class 3 is always predicted as 4 (boat)
    assert on_disk["settings"]["protocol"] == "zeroseg"
    assert on_disk["settings"]["templates"] == "imagenet80"
    assert on_disk["settings"]["class_names"][11] == ["table"]
    assert on_disk["num_images"] == 3
    assert "| mIoU |" in (out / "results.md").read_text()


def test_mismatched_vocabulary_is_an_error(tmp_path, voc):
    root, _ = voc
    dataset = VOCSegmentation(root)
    with pytest.raises(ZeroSegError, match="vocabulary has 20 classes, dataset 21"):
        evaluate(ColourSegmenter(), dataset, out_dir=tmp_path, vocabulary=load_vocabulary("voc20"))
    segmenter = ColourSegmenter()
    segmenter.set_vocabulary(load_vocabulary("voc20").class_names)  # forgot the background
    with pytest.raises(ZeroSegError, match="outputs 20 classes but the dataset has 21"):
        evaluate(segmenter, dataset, out_dir=tmp_path, progress=False)


def test_file_sha256(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(ZeroSegError, match="cannot hash"):
        file_sha256(tmp_path / "missing.pt")


def _worker(rank: int, world: int, init_file: str, root: str, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        evaluate(ColourSegmenter(), VOCSegmentation(root), out_dir=out,
                 vocabulary=load_vocabulary("voc"), progress=False)  # fmt: skip
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.timeout(300)
def test_two_processes_give_the_single_process_numbers(tmp_path, voc):
    root, _ = voc
    single = evaluate(ColourSegmenter(), VOCSegmentation(root), out_dir=tmp_path / "one",
                      vocabulary=load_vocabulary("voc"), progress=False)  # fmt: skip
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.multiprocessing.spawn(
        _worker, args=(2, str(tmp_path / "init"), str(root), str(tmp_path / "two")), nprocs=2
    )
    double = json.loads((tmp_path / "two" / "results.json").read_text())
    assert double["num_pixels"] == single["num_pixels"]  # 3 images over 2 ranks, none padded
    assert double["miou"] == pytest.approx(single["miou"], abs=1e-9)


def test_protocol_presets():
    config, flavour = protocol_config("zeroseg", "context")
    # the paper follows GroupViT's inference: its top-5 step, mmseg's (cv2) resizing
    assert flavour == "groupvit" and config.bg_threshold == 0.05 and config.top_k_classes == 5
    assert config.resize == "mmcv"
    assert (config.short_side, config.max_long_side, config.mode) == (448, 2048, "slide")
    assert (config.window, config.stride, config.logit_scale) == (448, 224, 100.0)
    assert config.templates == "imagenet80"
    assert protocol_config("zeroseg", "coco-object")[0].bg_threshold == 0.35
    groupvit = {d: protocol_config("groupvit", d)[0] for d in ("voc", "context", "coco-object")}
    assert [c.bg_threshold for c in groupvit.values()] == [0.95, 0.35, 0.95]
    assert all(c.top_k_classes == 5 and c.templates == "simple1" for c in groupvit.values())
    sclip = {
        d: protocol_config("sclip", d)
        for d in ("voc", "voc20", "context", "context59", "coco-object")
    }
    assert [c.logit_scale for c, _ in sclip.values()] == [65.0, 40.0, 50.0, 40.0, 50.0]
    assert [c.bg_threshold for c, _ in sclip.values()] == [0.1, 0.0, 0.1, 0.0, 0.1]
    assert all(
        f == "sclip"
        and (c.short_side, c.window, c.stride) == (336, 224, 112)
        and c.top_k_classes == 0
        and c.resize == "mmcv"
        for c, f in sclip.values()
    )
    with pytest.raises(ZeroSegError, match="unknown protocol"):
        protocol_config("clipseg", "voc")
