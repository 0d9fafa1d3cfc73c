"""COCO-Stuff, ADE20K and Cityscapes as benchmarks: our mIoU against a re-derivation of mmseg's
``IoUMetric`` on each dataset's files, ``zeroseg evaluate``/``prepare`` end to end, and the
protocols' settings as the authors' configs give them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_scene_datasets import (
    cityscapes_id_masks,
    raw_coco_stuff_masks,
    write_ade_tree,
    write_cityscapes_tree,
    write_coco_stuff_raw,
)
from test_segmentation_data import make_masks

from zeroseg.benchmark.class_names import ADE20K_CLASSES, CITYSCAPES_CLASSES, COCO_STUFF_CLASSES
from zeroseg.benchmark.datasets import build_dataset
from zeroseg.benchmark.metrics import ConfusionMatrix
from zeroseg.benchmark.protocols import protocol_config
from zeroseg.benchmark.vocabularies import load_vocabulary
from zeroseg.cli import main

SIZE = (24, 40)
MMSEG_NAMES = {
    "coco-stuff": COCO_STUFF_CLASSES,
    "ade": ADE20K_CLASSES,
    "cityscapes": CITYSCAPES_CLASSES,
}


def _mmseg_label(path: Path, reduce_zero_label: bool) -> torch.Tensor:
    """mmseg's ``LoadAnnotations``: the PNG's values, then (ADE20K) 0 -> 255, v - 1, 254 -> 255
    on the uint8 array."""
    gt = np.asarray(Image.open(path)).astype(np.uint8)
    if reduce_zero_label:
        gt = gt.copy()
        gt[gt == 0] = 255
        gt = gt - 1
        gt[gt == 254] = 255
    return torch.from_numpy(gt.astype(np.int64))


def _mmseg_metrics(pairs, num_classes: int, ignore_index: int = 255) -> dict:
    """mmseg 1.x ``IoUMetric``: ``intersect_and_union`` per image (torch.histc over the labelled
    pixels), areas summed over the dataset, ``total_area_to_metrics``, nan-means in percent."""
    totals = torch.zeros(4, num_classes, dtype=torch.float64)
    for pred, label in pairs:
        mask = label != ignore_index
        pred, label = pred[mask], label[mask]
        intersect = pred[pred == label]

        def hist(values: torch.Tensor) -> torch.Tensor:
            return torch.histc(values.float(), bins=num_classes, min=0, max=num_classes - 1)

        area_intersect, area_pred, area_label = hist(intersect), hist(pred), hist(label)
        area_union = area_pred + area_label - area_intersect
        totals += torch.stack([area_intersect, area_union, area_pred, area_label]).double()
    intersect, union, _, label_area = totals
    iou, acc = intersect / union, intersect / label_area
    return {
        "aAcc": float(intersect.sum() / label_area.sum()) * 100,
        "mIoU": float(np.nanmean(iou.numpy())) * 100,
        "mAcc": float(np.nanmean(acc.numpy())) * 100,
        "IoU": iou * 100,
    }


def _tree(name: str, base: Path) -> tuple[Path, str, int, bool]:
    """A prepared fake tree: (root, label-path pattern, classes, reduce_zero_label)."""
    if name == "coco-stuff":
        coco = write_coco_stuff_raw(base / "coco", raw_coco_stuff_masks(3, size=SIZE, seed=1))
        assert main(["prepare", "coco-stuff", "--root", str(coco)]) == 0
        return coco, "annotations/val2017/{}_labelTrainIds.png", 171, False
    if name == "ade":
        masks = make_masks(3, 151, size=SIZE, seed=2)
        for mask in masks:
            mask[:, -1] = 0  # ADE20K's "other", not 255
        root = write_ade_tree(base, masks)
        assert main(["prepare", "ade", "--root", str(base)]) == 0
        return root, "annotations/validation/{}.png", 150, True
    root = write_cityscapes_tree(base, cityscapes_id_masks(3, size=SIZE, seed=3))
    assert main(["prepare", "cityscapes", "--root", str(root)]) == 0
    return root, "gtFine/val/{city}/{}_gtFine_labelTrainIds.png", 19, False


def _label_file(root: Path, pattern: str, name: str) -> Path:
    return root / pattern.format(name, city=name.split("_")[0])


@pytest.mark.parametrize("name", ["coco-stuff", "ade", "cityscapes"])
def test_miou_matches_mmseg_iou_metric_on_the_dataset_files(tmp_path, name, capsys):
    root, pattern, num_classes, reduce = _tree(name, tmp_path)
    dataset = build_dataset(name, root)
    rng = np.random.default_rng(7)
    matrix, pairs = ConfusionMatrix(num_classes), []
    for _, label, file in dataset:
        # mostly right, some pixels wrong (classes only predicted included), ignored ones guessed;
        # the wrong guesses come from the lower half of the classes, so some classes are absent
        pred = label.clone()
        noisy = torch.from_numpy(rng.random(tuple(label.shape)) < 0.4) | (label == 255)
        guesses = rng.integers(0, num_classes // 2, int(noisy.sum()))
        pred[noisy] = torch.from_numpy(guesses)
        matrix.update(pred, label)
        pairs.append((pred, _mmseg_label(_label_file(root, pattern, file), reduce)))
    ours, mmseg = matrix.summary(dataset.class_names), _mmseg_metrics(pairs, num_classes)
    assert int((pairs[0][1] == 255).sum()) > 0  # the fixtures have ignored pixels
    assert ours["miou"] == pytest.approx(mmseg["mIoU"], abs=1e-9)
    assert ours["aacc"] == pytest.approx(mmseg["aAcc"], abs=1e-9)
    assert ours["macc"] == pytest.approx(mmseg["mAcc"], abs=1e-9)
    per_class = torch.tensor(list(ours["per_class"].values()), dtype=torch.float64)
    assert torch.allclose(per_class, mmseg["IoU"], equal_nan=True)
    assert 0 < ours["miou"] < 100 and per_class.isnan().any() and (per_class == 0).any()


@pytest.mark.parametrize(
    "name, method", [("coco-stuff", "zeroseg"), ("ade", "sclip"), ("cityscapes", "clearclip")]
)
def test_evaluate_end_to_end_agrees_with_mmseg_on_saved_predictions(
    tmp_path, tiny_run, name, method
):
    root, pattern, num_classes, reduce = _tree(name, tmp_path / "data")
    out, preds = tmp_path / "out", tmp_path / "preds"
    code = main(["evaluate", "--checkpoint", str(tiny_run), "--dataset", name, "--method", method,
                 "--data-root", str(root), "--out", str(out), "--save-predictions", str(preds),
                 "--no-progress", "short_side=32", "window=32", "stride=16",
                 "templates=simple1"])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    settings = results["settings"]
    assert settings["protocol"] == method and len(results["per_class"]) == num_classes
    assert settings["inference"]["bg_threshold"] == 0.0 and settings["background_words"] == []
    assert results["num_images"] == 3
    pairs = []
    for file in sorted(p.stem for p in preds.glob("*.png")):
        pred = torch.from_numpy(np.asarray(Image.open(preds / f"{file}.png")).astype(np.int64))
        pairs.append((pred, _mmseg_label(_label_file(root, pattern, file), reduce)))
    assert len(pairs) == 3
    mmseg = _mmseg_metrics(pairs, num_classes)
    assert results["miou"] == pytest.approx(mmseg["mIoU"], abs=1e-6)
    assert results["aacc"] == pytest.approx(mmseg["aAcc"], abs=1e-6)


# (protocol, dataset) -> (short side, window, stride, logit scale, PAMR steps, flavour); sources:
# wangf3014/SCLIP, mc-lan/ClearCLIP, sinahmr/NACLIP configs/cfg_coco_stuff164k.py, cfg_ade20k.py,
# cfg_city_scapes.py (Resize scale; ClearCLIP's Cityscapes slide_crop=224) and the segmentors'
# defaults (SCLIP/NACLIP slide 224/112, logit 40, NACLIP PAMR 10; ClearCLIP 448/224, logit 50);
# zeroseg/groupvit: GroupViT's geometry as khanrc/tcl's configs extend it to these datasets
EXPECTED = {
    ("sclip", "coco-stuff"): (448, 224, 112, 40.0, 0, "sclip"),
    ("sclip", "ade"): (336, 224, 112, 40.0, 0, "sclip"),
    ("sclip", "cityscapes"): (560, 224, 112, 40.0, 0, "sclip"),
    ("clearclip", "coco-stuff"): (448, 448, 224, 50.0, 0, "clearclip"),
    ("clearclip", "ade"): (448, 448, 224, 50.0, 0, "clearclip"),
    ("clearclip", "cityscapes"): (448, 224, 224, 50.0, 0, "clearclip"),
    ("naclip", "coco-stuff"): (336, 224, 112, 40.0, 10, "sclip"),
    ("naclip", "ade"): (336, 224, 112, 40.0, 10, "sclip"),
    ("naclip", "cityscapes"): (560, 224, 112, 40.0, 10, "sclip"),
    ("maskclip", "coco-stuff"): (448, 224, 112, 40.0, 0, "sclip"),
    ("maskclip", "ade"): (336, 224, 112, 40.0, 0, "sclip"),
    ("maskclip", "cityscapes"): (560, 224, 112, 40.0, 0, "sclip"),
    **{
        (p, d): (448, 448, 224, 100.0, 0, "groupvit")
        for p in ("zeroseg", "groupvit")
        for d in ("coco-stuff", "ade", "cityscapes")
    },
}


@pytest.mark.parametrize("protocol, dataset", list(EXPECTED))
def test_protocols_on_the_scene_benchmarks_follow_the_configs(protocol, dataset):
    config, flavour = protocol_config(protocol, dataset)
    got = (config.short_side, config.window, config.stride, config.logit_scale)
    assert (*got, config.pamr_steps, flavour) == EXPECTED[protocol, dataset]
    assert (config.mode, config.max_long_side, config.resize) == ("slide", 2048, "mmcv")
    assert config.bg_threshold == 0.0 and config.area_threshold == 0.0
    assert config.top_k_classes == (5 if protocol == "groupvit" else 0)  # zeroseg: lifted here
    vocabulary = load_vocabulary(dataset, flavour)
    assert not vocabulary.has_background and vocabulary.background_words == []


def test_scene_vocabularies_authors_and_mmseg_names():
    for dataset in ("coco-stuff", "ade", "cityscapes"):
        authors = load_vocabulary(dataset, "sclip")
        mmseg = load_vocabulary(dataset, "groupvit")
        assert mmseg.display_names == list(MMSEG_NAMES[dataset])
        # the authors' files are mmseg's names without spaces, one name per class, in all three
        assert authors.display_names == [n.replace(" ", "") for n in mmseg.display_names]
        assert all(len(names) == 1 for names in authors.class_names)
        for flavour in ("clearclip", "sclip-clean"):
            assert load_vocabulary(dataset, flavour).class_names == authors.class_names
    assert load_vocabulary("cityscapes", "sclip").display_names[6] == "trafficlight"
    assert load_vocabulary("ade", "groupvit").display_names[7] == "bed"  # mmseg writes "bed "
