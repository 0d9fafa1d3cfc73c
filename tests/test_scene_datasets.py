"""COCO-Stuff-164k, ADE20K and Cityscapes: converters, checks and readers on tiny fake trees in
their released layouts (helpers reused by ``test_scene_benchmarks.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_prepare import COCO_NAMES_BY_ID
from test_segmentation_data import image_of, make_masks, save_jpeg

from zeroseg.benchmark.class_names import ADE20K_CLASSES, CITYSCAPES_CLASSES, COCO_STUFF_CLASSES
from zeroseg.benchmark.datasets import (
    ADE20KSegmentation,
    CityscapesSegmentation,
    COCOStuffSegmentation,
    build_dataset,
    read_label,
)
from zeroseg.benchmark.prepare_coco import coco_raw_allowed, coco_stuff_lut, prepare_coco_stuff
from zeroseg.benchmark.prepare_scenes import (
    PREPARABLE,
    cityscapes_train_id_lut,
    prepare_ade20k,
    prepare_cityscapes,
    prepare_dataset,
)
from zeroseg.errors import ZeroSegError

# cityscapesScripts' labels.py, (name, id, trainId) of every label with an id in 0..33
CITYSCAPES_LABELS = (
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255),
    ("out of roi", 3, 255), ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255),
    ("road", 7, 0), ("sidewalk", 8, 1), ("parking", 9, 255), ("rail track", 10, 255),
    ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4), ("guard rail", 14, 255),
    ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8), ("terrain", 22, 9),
    ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13), ("truck", 27, 14),
    ("bus", 28, 15), ("caravan", 29, 255), ("trailer", 30, 255), ("train", 31, 16),
    ("motorcycle", 32, 17), ("bicycle", 33, 18),
)  # fmt: skip
CITIES = ("frankfurt", "lindau")


def save_index_png(mask: np.ndarray, path: Path) -> None:
    """A label PNG holding the values themselves (mode L), its folder made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask, mode="L").save(path)


def raw_coco_stuff_masks(count: int, size=(12, 16), seed: int = 0) -> list[np.ndarray]:
    """Blocky raw stuffthingmaps values (COCO category id - 1, 255 unlabelled)."""
    values = np.flatnonzero(coco_raw_allowed()[:255])  # the 171 raw class values, sorted
    return [
        np.where(m == 255, 255, values[np.minimum(m, 170)]).astype(np.uint8)
        for m in make_masks(count, 171, size=size, seed=seed)
    ]


def write_coco_stuff_raw(base: Path, raws: list[np.ndarray], split: str = "val2017") -> Path:
    """``base/images/<split>/*.jpg`` and ``base/stuffthingmaps_trainval2017/<split>/*.png``."""
    for i, raw in enumerate(raws):
        name = f"{i:012d}"
        save_jpeg(image_of(raw), base / "images" / split / f"{name}.jpg")
        save_index_png(raw, base / "stuffthingmaps_trainval2017" / split / f"{name}.png")
    return base


def write_ade_tree(base: Path, masks: list[np.ndarray], split: str = "validation") -> Path:
    """``base/ADEChallengeData2016/{images,annotations}/<split>`` with released values 0..150."""
    root = base / "ADEChallengeData2016"
    for i, mask in enumerate(masks):
        name = f"ADE_val_{i + 1:08d}"
        save_jpeg(image_of(mask), root / "images" / split / f"{name}.jpg")
        save_index_png(mask, root / "annotations" / split / f"{name}.png")
    return root


def write_cityscapes_tree(base: Path, ids: list[np.ndarray], split: str = "val") -> Path:
    """``leftImg8bit/<split>/CITY/*_leftImg8bit.png`` and ``gtFine/.../*_gtFine_labelIds.png``,
    the images spread over two cities."""
    for i, label_ids in enumerate(ids):
        city = CITIES[i % 2]
        name = f"{city}_{i:06d}_000019"
        image = base / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image_of(label_ids)).save(image)
        save_index_png(label_ids, base / "gtFine" / split / city / f"{name}_gtFine_labelIds.png")
    return base


def cityscapes_id_masks(count: int, size=(12, 16), seed: int = 0) -> list[np.ndarray]:
    """Blocky label ids 0..33 (the column of 255 becomes 0, unlabeled)."""
    masks = make_masks(count, 34, size=size, seed=seed)
    return [np.where(m == 255, 0, m).astype(np.uint8) for m in masks]


def test_coco_stuff_train_ids_follow_mmseg_table():
    lut = coco_stuff_lut()
    # mmseg's clsID_to_trID numbers the 171 raw values present in COCO-Stuff in increasing order
    values = np.flatnonzero(coco_raw_allowed()[:255])
    assert len(values) == 171 and np.array_equal(lut[values], np.arange(171))
    for category_id, name in COCO_NAMES_BY_ID.items():
        assert COCO_STUFF_CLASSES[lut[category_id - 1]] == name
    assert COCO_STUFF_CLASSES[lut[91]] == "banner" and COCO_STUFF_CLASSES[lut[181]] == "wood"
    assert lut[255] == 255 and lut[11] == 255  # unlabelled; 11 = unused category id 12


def test_prepare_coco_stuff_converts_and_the_reader_reads(tmp_path, capsys):
    raws = raw_coco_stuff_masks(3)
    raws[1][0, 0] = 11  # an unused category id: ignored, and the file is counted
    coco = write_coco_stuff_raw(tmp_path / "coco", raws)
    report = prepare_coco_stuff(coco)
    assert report.counts == {"val2017": 3} and len(report.class_names) == 171
    assert any("1 label files hold values that are not raw" in w for w in report.warnings)
    lut = coco_stuff_lut()
    assert report.ignored_pixels == sum(int((lut[r] == 255).sum()) for r in raws)
    assert sum(report.pixels) + report.ignored_pixels == 3 * 12 * 16
    assert "val2017: 3 images (expected 5000)" in capsys.readouterr().out
    dataset = build_dataset("coco-stuff", tmp_path)  # finds coco/ below the root
    assert isinstance(dataset, COCOStuffSegmentation) and len(dataset) == 3
    assert dataset.class_names == list(COCO_STUFF_CLASSES)
    for (_, label, name), raw in zip(dataset, raws):
        assert torch.equal(label, torch.from_numpy(lut[raw]).long())
        assert (coco / "annotations" / "val2017" / f"{name}_labelTrainIds.png").is_file()
    # COCO-Object from the same raw files sits beside it, with its own suffix
    assert prepare_dataset("coco-object", coco).counts == {"val2017": 3}
    assert len(build_dataset("coco-object", coco)) == 3


def test_coco_stuff_reader_without_converted_labels_names_the_command(tmp_path):
    coco = write_coco_stuff_raw(tmp_path, raw_coco_stuff_masks(1))
    with pytest.raises(ZeroSegError, match="zeroseg prepare coco-stuff"):
        COCOStuffSegmentation(coco)


def test_ade20k_reader_reduces_zero_label(tmp_path):
    masks = make_masks(3, 151, seed=2)
    masks[0][0, :3] = [0, 1, 150]
    root = write_ade_tree(tmp_path, masks)
    dataset = build_dataset("ade", tmp_path)  # finds ADEChallengeData2016 below the root
    assert isinstance(dataset, ADE20KSegmentation) and dataset.class_names == list(ADE20K_CLASSES)
    image, label, name = dataset[0]
    assert name == "ADE_val_00000001" and image.shape == (3, 12, 16)
    assert label[0, :3].tolist() == [255, 0, 149] and (label[:, -1] == 255).all()
    raw = torch.from_numpy(masks[0]).long()
    inside = (raw != 0) & (raw != 255)
    assert torch.equal(label[inside], raw[inside] - 1)
    assert len(ADE20KSegmentation(root)) == 3


def test_prepare_ade20k_counts_histogram_and_errors(tmp_path, capsys):
    masks = make_masks(2, 151, seed=4)
    masks[1][0, 0] = 151  # not an ADE20K value
    root = write_ade_tree(tmp_path, masks)
    save_jpeg(np.zeros((4, 4, 3), np.uint8), root / "images" / "training" / "ADE_train_1.jpg")
    report = prepare_ade20k(tmp_path)
    assert report.counts == {"training": 1, "validation": 2}
    assert report.class_names == list(ADE20K_CLASSES)
    values = np.concatenate([m.ravel() for m in masks])
    assert report.pixels[0] == int((values == 1).sum())  # "wall" is the released value 1
    assert report.ignored_pixels == int(((values == 0) | (values == 255)).sum())
    assert any("above 150" in w and "151" in w for w in report.warnings)
    assert "validation: 2 images (expected 2000)" in capsys.readouterr().out
    (root / "annotations" / "validation" / "ADE_val_00000002.png").unlink()
    with pytest.raises(ZeroSegError, match=r"ADE_val_00000002\.png does not exist"):
        prepare_ade20k(root, verbose=False)
    with pytest.raises(ZeroSegError, match="ADE20K data root .* no images"):
        prepare_ade20k(tmp_path / "nowhere")


def test_cityscapes_train_ids_follow_cityscapes_scripts():
    lut = cityscapes_train_id_lut()
    assert [lut[i] for _, i, _ in CITYSCAPES_LABELS] == [t for _, _, t in CITYSCAPES_LABELS]
    names = {t: n for n, _, t in CITYSCAPES_LABELS if t != 255}
    assert [names[t] for t in range(19)] == list(CITYSCAPES_CLASSES)
    assert (lut[34:] == 255).all()


def test_prepare_cityscapes_converts_and_the_reader_reads(tmp_path, capsys):
    ids = cityscapes_id_masks(4, seed=6)
    ids[3][0, 0] = 40  # a lane-line id of the newest labels.py, not in gtFine
    root = write_cityscapes_tree(tmp_path / "cityscapes", ids)
    report = prepare_cityscapes(tmp_path)  # finds cityscapes/ below the root
    assert report.counts == {"val": 4} and report.class_names == list(CITYSCAPES_CLASSES)
    assert any("1 label files hold label ids above 33" in w for w in report.warnings)
    lut = cityscapes_train_id_lut()
    assert report.ignored_pixels == sum(int((lut[i] == 255).sum()) for i in ids)
    assert "val: 4 images (expected 500)" in capsys.readouterr().out
    dataset = build_dataset("cityscapes", tmp_path)
    assert isinstance(dataset, CityscapesSegmentation) and len(dataset) == 4
    assert dataset.names == sorted(f"{CITIES[i % 2]}_{i:06d}_000019" for i in range(4))
    for _, label, name in dataset:
        i = int(name.split("_")[1])
        assert torch.equal(label, torch.from_numpy(lut[ids[i]]).long())
    written = root / "gtFine" / "val" / "lindau" / "lindau_000001_000019_gtFine_labelTrainIds.png"
    Image.fromarray(np.full((12, 16), 3, np.uint8), mode="L").save(written)
    prepare_cityscapes(root, verbose=False)  # existing train-id labels are kept
    assert (read_label(written) == 3).all()
    prepare_cityscapes(root, overwrite=True, verbose=False)
    assert np.array_equal(read_label(written), lut[ids[1]])


def test_cityscapes_missing_labels_are_one_line_errors(tmp_path):
    root = write_cityscapes_tree(tmp_path, cityscapes_id_masks(2))
    with pytest.raises(ZeroSegError, match="zeroseg prepare cityscapes"):
        CityscapesSegmentation(root)  # not converted yet
    for path in (root / "gtFine").rglob("*_labelIds.png"):
        path.unlink()
    with pytest.raises(ZeroSegError, match=r"no .*gtFine/val/CITY/\*_gtFine_labelIds\.png"):
        prepare_cityscapes(root, verbose=False)
    with pytest.raises(ZeroSegError, match="Cityscapes data root .* no leftImg8bit"):
        build_dataset("cityscapes", tmp_path / "nowhere")
    with pytest.raises(ZeroSegError, match="unknown dataset 'ade20k' to prepare"):
        prepare_dataset("ade20k", root)


def test_cli_prepare_offers_every_preparable_benchmark(tmp_path, capsys):
    from zeroseg.cli import build_parser, main

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    choices = next(a for a in sub.choices["prepare"]._actions if a.dest == "dataset").choices
    assert tuple(choices) == PREPARABLE
    assert main(["prepare", "ade", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "ADE20K data root" in err and "\n" not in err
