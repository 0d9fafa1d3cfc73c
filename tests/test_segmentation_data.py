"""Benchmark readers on tiny fake trees in each on-disk layout (helpers reused by other tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zeroseg.benchmark.datasets import (
    COCO_OBJECT_CLASSES,
    CONTEXT_CLASSES,
    VOC_CLASSES,
    COCOObjectSegmentation,
    PascalContextSegmentation,
    VOCSegmentation,
    build_dataset,
)
from zeroseg.errors import ZeroSegError

RNG = np.random.default_rng(0)
COLORS = RNG.integers(0, 256, size=(256, 3)).astype(np.uint8)  # colour of each class in images


def make_masks(count: int, num_classes: int, size=(12, 16), seed: int = 0) -> list[np.ndarray]:
    """Blocky label maps: a few rectangles of random classes, one 255 border strip."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(count):
        h, w = size
        mask = np.full((h, w), rng.integers(0, num_classes), dtype=np.uint8)
        mask[h // 2 :, : w // 2] = rng.integers(0, num_classes)
        mask[: h // 2, w // 2 :] = rng.integers(0, num_classes)
        mask[:, -1] = 255
        masks.append(mask)
    return masks


def image_of(mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 picture whose colour encodes the class of each pixel."""
    return COLORS[mask]


def save_palette_png(mask: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(mask, mode="P")
    img.putpalette(RNG.integers(0, 256, 768).astype(np.uint8).tolist())  # colours != indices
    img.save(path)


def save_jpeg(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=100, subsampling=0)


def write_voc_tree(base: Path, masks, split: str = "val", year: str = "2012") -> Path:
    """``base/VOCdevkit/VOC<year>`` with JPEGImages, palette labels and the split file."""
    root = base / "VOCdevkit" / f"VOC{year}"
    label_dir = "SegmentationClass" if year == "2012" else "SegmentationClassContext"
    split_dir = "Segmentation" if year == "2012" else "SegmentationContext"
    names = [f"2008_{i:06d}" for i in range(len(masks))]
    for name, mask in zip(names, masks):
        save_jpeg(image_of(mask), root / "JPEGImages" / f"{name}.jpg")
        save_palette_png(mask, root / label_dir / f"{name}.png")
    (root / "ImageSets" / split_dir).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / split_dir / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def write_coco_object_tree(base: Path, masks, split: str = "val2017") -> Path:
    """``base/images/<split>`` and converted ``annotations/<split>/*_instanceTrainIds.png``."""
    for i, mask in enumerate(masks):
        name = f"{i:012d}"
        save_jpeg(image_of(mask), base / "images" / split / f"{name}.jpg")
        path = base / "annotations" / split / f"{name}_instanceTrainIds.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask, mode="L").save(path)
    return base


def test_voc_reader_resolves_parent_and_reads_palette_indices(tmp_path):
    masks = make_masks(3, 21)
    write_voc_tree(tmp_path, masks)
    dataset = VOCSegmentation(tmp_path)  # parent of VOCdevkit/VOC2012
    assert len(dataset) == 3 and dataset.class_names == list(VOC_CLASSES)
    image, label, name = dataset[1]
    assert name == "2008_000001" and image.shape == (3, 12, 16) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert label.dtype == torch.int64 and torch.equal(label, torch.from_numpy(masks[1]).long())
    expected = torch.from_numpy(image_of(masks[1])).permute(2, 0, 1).float() / 255
    assert (image - expected).abs().max() < 0.05  # JPEG at quality 100
    assert len(VOCSegmentation(tmp_path / "VOCdevkit" / "VOC2012")) == 3


def test_voc_reader_uses_class_names_file_and_voc20(tmp_path):
    masks = make_masks(2, 3)
    root = write_voc_tree(tmp_path, masks)
    (root / "class_names.txt").write_text("sky\ncat\ndog\n")
    assert VOCSegmentation(root).class_names == ["sky", "cat", "dog"]
    voc20 = VOCSegmentation(root, background_to_ignore=True)
    assert voc20.class_names == ["cat", "dog"]
    _, label, _ = voc20[0]
    raw = torch.from_numpy(masks[0]).long()
    assert torch.equal(label[raw == 0], torch.full_like(label[raw == 0], 255))
    assert torch.equal(label[raw == 255], torch.full_like(label[raw == 255], 255))
    inside = (raw != 0) & (raw != 255)
    assert torch.equal(label[inside], raw[inside] - 1)


def test_context_reader_and_context59(tmp_path):
    masks = make_masks(2, 60, seed=3)
    write_voc_tree(tmp_path, masks, year="2010")
    context = PascalContextSegmentation(tmp_path)
    assert context.class_names == list(CONTEXT_CLASSES) and len(context) == 2
    assert torch.equal(context[0][1], torch.from_numpy(masks[0]).long())
    context59 = build_dataset("context59", tmp_path)
    assert len(context59.class_names) == 59
    label = context59[0][1]
    raw = torch.from_numpy(masks[0]).long()
    assert torch.equal(label, torch.where((raw == 0) | (raw == 255), 255, raw - 1))


def test_coco_object_reader(tmp_path):
    masks = make_masks(2, 81, seed=5)
    masks[0][:, -1] = 0  # COCO-Object has no ignore pixels
    write_coco_object_tree(tmp_path / "coco", masks)
    dataset = build_dataset("coco-object", tmp_path)  # finds coco/ below the root
    assert isinstance(dataset, COCOObjectSegmentation) and len(dataset) == 2
    assert dataset.class_names == list(COCO_OBJECT_CLASSES) and len(dataset.class_names) == 81
    image, label, name = dataset[0]
    assert name == "000000000000" and torch.equal(label, torch.from_numpy(masks[0]).long())


def test_wrong_root_and_missing_split_are_one_line_errors(tmp_path):
    with pytest.raises(ZeroSegError, match="VOC data root .* no JPEGImages"):
        VOCSegmentation(tmp_path / "nowhere")
    root = write_voc_tree(tmp_path, make_masks(1, 21))
    with pytest.raises(ZeroSegError, match=r"split file .*train\.txt does not exist"):
        VOCSegmentation(root, split="train")
    with pytest.raises(ZeroSegError, match="unknown dataset"):
        build_dataset("ade20k", root)


def test_missing_label_and_size_mismatch_name_the_file(tmp_path):
    root = write_voc_tree(tmp_path, make_masks(2, 21))
    (root / "SegmentationClass" / "2008_000001.png").unlink()
    with pytest.raises(ZeroSegError, match=r"2008_000001\.png does not exist"):
        VOCSegmentation(root)
    save_palette_png(np.zeros((5, 5), np.uint8), root / "SegmentationClass" / "2008_000001.png")
    dataset = VOCSegmentation(root)
    with pytest.raises(
        ZeroSegError, match=r"label .*2008_000001\.png is 5x5 but its image is 16x12"
    ):
        dataset[1]


def test_rgb_label_is_rejected(tmp_path):
    root = write_voc_tree(tmp_path, make_masks(1, 21))
    Image.new("RGB", (16, 12)).save(root / "SegmentationClass" / "2008_000000.png")
    with pytest.raises(ZeroSegError, match="is a RGB image"):
        VOCSegmentation(root)[0]
