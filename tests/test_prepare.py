"""Converters and verifiers on tiny fake trees: COCO-Stuff -> COCO-Object, Context, VOC."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image
from test_segmentation_data import make_masks, save_jpeg, write_voc_tree

from zeroseg.data.segmentation import COCO_OBJECT_CLASSES, COCOObjectSegmentation, read_label
from zeroseg.errors import ZeroSegError
from zeroseg.prepare import (
    COCO_THING_IDS,
    CONTEXT_DETAIL_IDS,
    coco_stuff_to_object_lut,
    prepare_coco_object,
    prepare_context,
    prepare_voc,
)

# COCO category id -> name, from COCO's category list (spot checks around every id gap)
COCO_NAMES_BY_ID = {
    1: "person", 11: "fire hydrant", 13: "stop sign", 25: "giraffe", 27: "backpack",
    28: "umbrella", 31: "handbag", 44: "bottle", 46: "wine glass", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 82: "refrigerator", 84: "book", 90: "toothbrush",
}  # fmt: skip


def test_coco_ids_and_lookup_follow_coco_category_list():
    assert len(COCO_THING_IDS) == 80 and len(set(COCO_THING_IDS)) == 80
    missing = sorted(set(range(1, 91)) - set(COCO_THING_IDS))
    assert missing == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]
    lut = coco_stuff_to_object_lut()
    for category_id, name in COCO_NAMES_BY_ID.items():
        assert COCO_OBJECT_CLASSES[lut[category_id - 1]] == name  # raw value = id - 1
    assert sorted(lut[[i - 1 for i in COCO_THING_IDS]].tolist()) == list(range(1, 81))
    assert not lut[91:].any() and lut[255] == 0  # stuff and unlabelled -> background


def _raw_coco(tmp_path, odd: bool = False):
    """Two raw stuffthingmaps PNGs (values = category id - 1) and their images."""
    coco = tmp_path / "coco"
    first = np.array([[0, 0, 12, 26], [89, 91, 181, 255]], dtype=np.uint8)
    second = np.array([[255, 255, 43, 43], [45, 45, 100, 11 if odd else 0]], dtype=np.uint8)
    expected = [
        np.array([[1, 1, 12, 25], [80, 0, 0, 0]]),  # person, stop sign, backpack, toothbrush
        np.array([[0, 0, 40, 40], [41, 41, 0, 0 if odd else 1]]),  # bottle, wine glass
    ]
    for i, raw in enumerate([first, second]):
        name = f"{i:012d}"
        path = coco / "stuffthingmaps_trainval2017" / "val2017" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(raw, mode="L").save(path)
        save_jpeg(np.zeros((2, 4, 3), np.uint8), coco / "images" / "val2017" / f"{name}.jpg")
    return coco, expected


def test_coco_object_conversion_maps_things_stuff_and_unlabelled(tmp_path, capsys):
    coco, expected = _raw_coco(tmp_path)
    report = prepare_coco_object(coco)  # no train2017 anywhere: not needed
    for i, want in enumerate(expected):
        out = coco / "annotations" / "val2017" / f"{i:012d}_instanceTrainIds.png"
        assert np.array_equal(read_label(out), want)
    assert not list((coco / "annotations" / "val2017").glob("*.tmp"))
    assert report.counts == {"val2017": 2}
    pixels = dict(zip(report.class_names, report.pixels))
    assert pixels["background"] == 6 and pixels["person"] == 3 and pixels["bottle"] == 2
    assert sum(report.pixels) == 16 and report.ignored_pixels == 0
    assert dict(zip(report.class_names, report.images_with_class))["background"] == 2
    assert any(
        "expected 5000" in line or "official split has 5000" in line for line in report.warnings
    )
    printed = capsys.readouterr().out
    assert "val2017: 2 images (expected 5000)" in printed and "person" in printed
    dataset = COCOObjectSegmentation(coco)
    assert len(dataset) == 2 and int(dataset[0][1][0, 2]) == 12


def test_coco_conversion_warns_on_non_raw_values_and_respects_existing(tmp_path):
    coco, _ = _raw_coco(tmp_path, odd=True)
    report = prepare_coco_object(coco, verbose=False)
    assert any("not raw COCO-Stuff ids" in w for w in report.warnings)
    out = coco / "annotations" / "val2017" / "000000000000_instanceTrainIds.png"
    Image.fromarray(np.full((2, 4), 7, np.uint8), mode="L").save(out)
    prepare_coco_object(coco, verbose=False)  # existing output kept
    assert (read_label(out) == 7).all()
    prepare_coco_object(coco, overwrite=True, verbose=False)
    assert read_label(out)[0, 0] == 1


def test_coco_conversion_without_raw_labels_is_an_error(tmp_path):
    with pytest.raises(ZeroSegError, match="no raw COCO-Stuff label PNGs for val2017"):
        prepare_coco_object(tmp_path / "coco", verbose=False)


def test_prepare_voc_counts_and_histogram(tmp_path, capsys):
    masks = make_masks(3, 21, seed=1)
    masks[2][0, 0] = 30  # not a VOC class
    write_voc_tree(tmp_path, masks)
    report = prepare_voc(tmp_path)
    counts = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=256)
    assert report.counts == {"val": 3}
    assert report.pixels == counts[:21].tolist() and report.ignored_pixels == counts[255]
    assert report.images_with_class == [sum((m == c).any() for m in masks) for c in range(21)]
    assert any("{30: 1}" in w for w in report.warnings)
    assert any("official split has 1449" in w for w in report.warnings)
    assert "val: 3 images (expected 1449)" in capsys.readouterr().out


def test_prepare_voc_missing_label_is_an_error(tmp_path):
    root = write_voc_tree(tmp_path, make_masks(2, 21))
    (root / "SegmentationClass" / "2008_000000.png").unlink()
    with pytest.raises(ZeroSegError, match=r"2008_000000\.png does not exist"):
        prepare_voc(tmp_path, verbose=False)


def test_prepare_context_verifies_converted_tree(tmp_path):
    write_voc_tree(tmp_path, make_masks(2, 60, seed=4), year="2010")
    report = prepare_context(tmp_path, verbose=False)
    assert report.counts == {"val": 2} and len(report.pixels) == 60


def test_prepare_context_without_detail_package_says_how_to_get_it(tmp_path, monkeypatch):
    root = tmp_path / "VOCdevkit" / "VOC2010"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "trainval_merged.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "detail", None)  # import detail -> ImportError
    with pytest.raises(ZeroSegError, match="needs the Detail API: pip install"):
        prepare_context(tmp_path, verbose=False)


def test_prepare_context_converts_detail_annotations(tmp_path, monkeypatch):
    root = tmp_path / "VOCdevkit" / "VOC2010"
    (root / "trainval_merged.json").parent.mkdir(parents=True)
    (root / "trainval_merged.json").write_text("{}")
    ids = np.array(CONTEXT_DETAIL_IDS)
    masks = {"train": [ids[[0, 5, 59, 1]].reshape(2, 2)], "val": [ids[[59, 2, 0, 0]].reshape(2, 2)]}
    for split in masks:
        save_jpeg(np.zeros((2, 2, 3), np.uint8), root / "JPEGImages" / f"{split}_0.jpg")

    class FakeDetail:  # the Detail API's surface used by the converter
        def __init__(self, annotation_file, image_dir, phase):
            self.phase = phase

        def getImgs(self):
            return [{"file_name": f"{self.phase}_0.jpg", "index": 0}]

        def getMask(self, info):
            return masks[self.phase][info["index"]]

    monkeypatch.setitem(sys.modules, "detail", types.SimpleNamespace(Detail=FakeDetail))
    report = prepare_context(tmp_path, verbose=False)
    assert report.counts == {"train": 1, "val": 1}
    label = read_label(root / "SegmentationClassContext" / "val_0.png")
    assert np.array_equal(label, [[59, 2], [0, 0]])
    assert (root / "ImageSets" / "SegmentationContext" / "train.txt").read_text() == "train_0\n"
