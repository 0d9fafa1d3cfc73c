"""Converters and verifiers on tiny fake trees: COCO-Stuff -> COCO-Object, Context, VOC."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image
from test_segmentation_data import make_masks, save_jpeg, write_voc_tree

from zeroseg.benchmark.datasets import COCO_OBJECT_CLASSES, COCOObjectSegmentation, read_label
from zeroseg.benchmark.prepare import prepare_context, prepare_voc
from zeroseg.benchmark.prepare_coco import (
    COCO_THING_IDS,
    coco_stuff_to_object_lut,
    prepare_coco_object,
)
from zeroseg.errors import ZeroSegError

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


def test_prepare_context_without_pycocotools_says_how_to_get_it(tmp_path, monkeypatch):
    root = tmp_path / "VOCdevkit" / "VOC2010"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "trainval_merged.json").write_text(json.dumps(DETAIL_JSON))
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # import pycocotools -> ImportError
    with pytest.raises(ZeroSegError, match="needs pycocotools: pip install pycocotools"):
        prepare_context(tmp_path, verbose=False)


# trainval_merged.json in the Detail API's format: compressed-RLE masks ({"size": [h, w], "counts"}),
# painted in file order (later over earlier); 440 wall, 284 person, 2 aeroplane, 360 sky.
DETAIL_JSON = {
    "images": [
        {"image_id": 2008000002, "file_name": "2008_000002.jpg", "height": 4, "width": 6,
         "phase": "train"},
        {"image_id": 2008000003, "file_name": "2008_000003.jpg", "height": 3, "width": 5,
         "phase": "val"},
    ],
    "annos_segmentation": [
        {"id": 1, "image_id": 2008000002, "category_id": 440, "iscrowd": 0,
         "segmentation": {"size": [4, 6], "counts": "0220000000000"}},  # rows 0-1
        {"id": 2, "image_id": 2008000002, "category_id": 284, "iscrowd": 0,
         "segmentation": {"size": [4, 6], "counts": "888"}},  # columns 2-3, over the wall
        {"id": 3, "image_id": 2008000003, "category_id": 2, "iscrowd": 1,
         "segmentation": {"size": [3, 5], "counts": "4210002"}},  # rows 1-2, columns 1-3
        {"id": 4, "image_id": 2008000003, "category_id": 360, "iscrowd": 0,
         "segmentation": {"size": [3, 5], "counts": "01200000000"}},  # row 0
    ],
    "categories": [], "parts": [], "annos_occlusion": [], "annos_boundary": [],
}  # fmt: skip


def test_prepare_context_converts_detail_json(tmp_path):
    pytest.importorskip("pycocotools")
    root = tmp_path / "VOCdevkit" / "VOC2010"
    (root / "trainval_merged.json").parent.mkdir(parents=True)
    (root / "trainval_merged.json").write_text(json.dumps(DETAIL_JSON))
    for stem, (h, w) in {"2008_000002": (4, 6), "2008_000003": (3, 5)}.items():
        save_jpeg(np.zeros((h, w, 3), np.uint8), root / "JPEGImages" / f"{stem}.jpg")
    report = prepare_context(tmp_path, verbose=False)
    assert report.counts == {"train": 1, "val": 1}
    # what the Detail API's getMask and mmseg's converter give for this file (0 unlabelled,
    # 56 wall, 37 person, 47 sky, 1 aeroplane)
    train = read_label(root / "SegmentationClassContext" / "2008_000002.png")
    assert np.array_equal(train, [[56, 56, 37, 37, 56, 56]] * 2 + [[0, 0, 37, 37, 0, 0]] * 2)
    val = read_label(root / "SegmentationClassContext" / "2008_000003.png")
    assert np.array_equal(val, [[47] * 5, [0, 1, 1, 1, 0], [0, 1, 1, 1, 0]])
    split = root / "ImageSets" / "SegmentationContext"
    assert (split / "train.txt").read_text() == "2008_000002\n"


def test_prepare_context_refuses_a_category_outside_the_59(tmp_path):
    pytest.importorskip("pycocotools")
    root = tmp_path / "VOCdevkit" / "VOC2010"
    (root / "JPEGImages").mkdir(parents=True)
    detail = json.loads(json.dumps(DETAIL_JSON))
    detail["annos_segmentation"][0]["category_id"] = 1  # not a PASCAL Context class
    (root / "trainval_merged.json").write_text(json.dumps(detail))
    with pytest.raises(ZeroSegError, match=r"category ids \[1\]"):
        prepare_context(tmp_path, verbose=False)
