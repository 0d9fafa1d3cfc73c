"""Benchmark preparation without mmcv: convert what needs converting, then verify and report.

- ``prepare_voc(root)``: checks ``VOCdevkit/VOC2012`` (split files, images, palette labels).
- ``prepare_context(root)``: checks ``VOCdevkit/VOC2010/SegmentationClassContext``; if it is missing,
  converts the Detail API annotations (``trainval_merged.json``, read directly, masks decoded with
  pycocotools; mmseg's class mapping).

Each writes files atomically, prints per-split image counts and a class histogram, and warns when a
count differs from the official size (``KNOWN_SIZES``: VOC val 1,449; Context val 5,105; COCO
val2017 5,000; ADE20K validation 2,000; Cityscapes val 500). The report helpers here serve the
other converters too: COCO-Object and COCO-Stuff in ``prepare_coco``, ADE20K, Cityscapes and
``prepare_dataset`` (``zeroseg prepare``) in ``prepare_scenes``.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from zeroseg.benchmark.datasets import (
    CONTEXT_CLASSES,
    VOC_CLASSES,
    read_label,
    read_split,
    resolve_root,
)
from zeroseg.errors import ZeroSegError
from zeroseg.runtime.atomic import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

KNOWN_SIZES = {
    "voc": {"train": 1464, "val": 1449, "trainval": 2913},
    "context": {"train": 4996, "val": 5105},
    "coco-object": {"train2017": 118287, "val2017": 5000},
    "coco-stuff": {"train2017": 118287, "val2017": 5000},
    "ade": {"training": 20210, "validation": 2000},
    "cityscapes": {"train": 2975, "val": 500, "test": 1525},
}
# The 60 Detail API category ids of PASCAL Context; class index = rank in this sorted list (mmseg).
CONTEXT_DETAIL_IDS = (
    0, 2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113,
    115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326,
    347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)  # fmt: skip


@dataclass
class PrepareReport:
    """What a prepare step found: images per split and a class histogram of one split."""

    dataset: str
    counts: dict[str, int]
    histogram_split: str
    class_names: list[str]
    pixels: list[int]
    images_with_class: list[int]
    ignored_pixels: int = 0
    warnings: list[str] = field(default_factory=list)

    def format(self) -> str:
        """Human-readable report (per-split counts, class histogram, warnings)."""
        lines = [f"{self.dataset}:"]
        for split, count in self.counts.items():
            expected = KNOWN_SIZES.get(self.dataset, {}).get(split)
            note = f" (expected {expected})" if expected is not None else ""
            lines.append(f"  {split}: {count} images{note}")
        total = sum(self.pixels) + self.ignored_pixels
        lines.append(f"  class histogram of {self.histogram_split} (pixels, share, images):")
        width = max(len(n) for n in self.class_names)
        for name, pixels, images in zip(self.class_names, self.pixels, self.images_with_class):
            share = 100 * pixels / total if total else 0.0
            lines.append(f"    {name:<{width}} {pixels:>12} {share:6.2f}% {images:>7}")
        if self.ignored_pixels:
            share = 100 * self.ignored_pixels / total
            lines.append(f"    {'(ignored 255)':<{width}} {self.ignored_pixels:>12} {share:6.2f}%")
        lines += [f"  WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


def finish_report(report: PrepareReport, verbose: bool) -> PrepareReport:
    """Add the split-size warnings, log the warnings and print the report if ``verbose``."""
    for split, count in report.counts.items():
        expected = KNOWN_SIZES.get(report.dataset, {}).get(split)
        if expected is not None and count != expected:
            report.warnings.append(f"{split} has {count} images, the official split has {expected}")
    for warning in report.warnings:
        logger.warning("%s: %s", report.dataset, warning)
    if verbose:
        print(report.format())
    return report


def write_label_png(array: np.ndarray, path: Path) -> None:
    """Write (H, W) class indices as a mode-L PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), mode="L").save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def label_histogram(
    labels: list[Path], num_classes: int, images: list[Path] | None = None
) -> tuple[np.ndarray, np.ndarray, int, dict[int, int]]:
    """Pixel and image counts per class over label PNGs; checks each label's size against its image.

    Returns:
        pixels (K,), images_with_class (K,), ignored (255) pixels, unexpected value -> pixels.
    """
    pixels = np.zeros(256, dtype=np.int64)
    present = np.zeros(256, dtype=np.int64)
    for index, path in enumerate(labels):
        label = read_label(path)
        if images is not None:
            with Image.open(images[index]) as img:
                if img.size != (label.shape[1], label.shape[0]):
                    raise ZeroSegError(
                        f"label {path} is {label.shape[1]}x{label.shape[0]} but its image is "
                        f"{img.size[0]}x{img.size[1]}"
                    )
        counts = np.bincount(label.ravel().astype(np.int64), minlength=256)[:256]
        pixels += counts
        present += counts > 0
    unexpected = {v: int(pixels[v]) for v in range(num_classes, 255) if pixels[v]}
    return pixels[:num_classes], present[:num_classes], int(pixels[255]), unexpected


def _verify_tree(
    dataset: str,
    root: Path,
    split_dir: Path,
    label_dir: str,
    class_names: tuple[str, ...],
    split: str,
    verbose: bool,
) -> PrepareReport:
    """Count the split files, check the split's images/labels and histogram its labels."""
    counts = {p.stem: len(read_split(p)) for p in sorted(split_dir.glob("*.txt"))}
    names = read_split(split_dir / f"{split}.txt")
    images = [root / "JPEGImages" / f"{n}.jpg" for n in names]
    labels = [root / label_dir / f"{n}.png" for n in names]
    for path in images + labels:
        if not path.is_file():
            raise ZeroSegError(f"{path} does not exist (listed in {split}.txt)")
    pixels, present, ignored, unexpected = label_histogram(labels, len(class_names), images)
    report = PrepareReport(
        dataset, counts, split, list(class_names), pixels.tolist(), present.tolist(), ignored
    )
    if unexpected:
        report.warnings.append(f"label values outside the classes (value: pixels): {unexpected}")
    return finish_report(report, verbose)


def prepare_voc(root: str | Path, split: str = "val", verbose: bool = True) -> PrepareReport:
    """Verify PASCAL VOC 2012 (``VOCdevkit/VOC2012`` or a folder holding it) and report.

    Raises:
        ZeroSegError: missing folders, split files, images or labels, RGB labels, size mismatches.
    """
    root = resolve_root(root, ["VOCdevkit/VOC2012", "VOC2012"], "JPEGImages", "VOC")
    split_dir = root / "ImageSets" / "Segmentation"
    return _verify_tree("voc", root, split_dir, "SegmentationClass", VOC_CLASSES, split, verbose)


def prepare_context(
    root: str | Path,
    annotations: str | Path | None = None,
    split: str = "val",
    overwrite: bool = False,
    verbose: bool = True,
) -> PrepareReport:
    """Verify PASCAL Context (``VOCdevkit/VOC2010``), converting the Detail annotations if needed.

    Args:
        root: ``VOCdevkit/VOC2010`` or a folder holding it.
        annotations: ``trainval_merged.json`` (default: inside root); used only when
            ``SegmentationClassContext`` or the split files are missing, or with ``overwrite``.
        split: the split to histogram.
        overwrite: convert again even if the labels exist.
    """
    root = resolve_root(root, ["VOCdevkit/VOC2010", "VOC2010"], "JPEGImages", "Context")
    split_dir = root / "ImageSets" / "SegmentationContext"
    converted = (root / "SegmentationClassContext").is_dir() and (
        split_dir / f"{split}.txt"
    ).is_file()
    if overwrite or not converted:
        json_path = Path(annotations) if annotations else root / "trainval_merged.json"
        if not json_path.is_file():
            raise ZeroSegError(
                f"no converted Context labels in {root} and no Detail annotations at {json_path}"
            )
        convert_context_detail(root, json_path, overwrite=overwrite)
    return _verify_tree(
        "context", root, split_dir, "SegmentationClassContext", CONTEXT_CLASSES, split, verbose
    )


def context_index_map(mask: np.ndarray, source: str = "mask") -> np.ndarray:
    """Detail API category ids (H, W) -> Context class indices 0..59 (uint8)."""
    ids = np.asarray(CONTEXT_DETAIL_IDS)
    index = np.clip(np.searchsorted(ids, mask), 0, len(ids) - 1)
    if not np.array_equal(ids[index], mask):
        bad = np.unique(mask[ids[index] != mask])[:5].tolist()
        raise ZeroSegError(f"{source}: category ids {bad} are not PASCAL Context classes")
    return index.astype(np.uint8)


def convert_context_detail(
    root: Path, json_path: Path, splits: tuple[str, ...] = ("train", "val"), overwrite: bool = False
) -> None:
    """Write ``SegmentationClassContext/*.png`` and the split files from ``trainval_merged.json``.

    Reads the Detail API's JSON directly (the Detail API itself is not on the package registry):
    an image belongs to a split by its ``phase``; its class mask starts as zeros (unlabelled) and
    every entry of ``annos_segmentation`` for the image, in file order, paints its compressed-RLE
    mask (decoded with pycocotools at the RLE's own size) with its ``category_id``, later entries
    over earlier ones, crowd entries included (``Detail.getMask``). mmseg's converter then maps the
    59 category ids to 1..59 by rank (``context_index_map``) and writes mode-L PNGs and sorted
    split files (``ImageSets/SegmentationContext/{split}.txt``).
    """
    try:
        from pycocotools import mask as rle_masks
    except ImportError:
        raise ZeroSegError(
            "converting PASCAL Context needs pycocotools: pip install pycocotools"
        ) from None
    detail = _read_detail_json(json_path)
    by_image: dict[int, list[dict]] = {}
    for ann in detail["annos_segmentation"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    out_dir = root / "SegmentationClassContext"
    for split in splits:
        names = []
        for info in (i for i in detail["images"] if i.get("phase") == split):
            name = Path(info["file_name"]).stem
            path = out_dir / f"{name}.png"
            if overwrite or not path.is_file():
                mask = np.zeros((info["height"], info["width"]), dtype=np.int64)
                for ann in by_image.get(info["image_id"], []):
                    segmentation = ann["segmentation"]
                    if not isinstance(segmentation, dict) or "counts" not in segmentation:
                        raise ZeroSegError(
                            f"{json_path}: annotation {ann.get('id')} of {name} is not a "
                            "compressed RLE mask"
                        )
                    painted = rle_masks.decode(segmentation).astype(bool)
                    if painted.shape != mask.shape:
                        raise ZeroSegError(
                            f"{json_path}: annotation {ann.get('id')} of {name} is "
                            f"{painted.shape}, the image {mask.shape}"
                        )
                    mask[painted] = ann["category_id"]
                write_label_png(context_index_map(mask, name), path)
            names.append(name)
        split_file = root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        atomic_write_text(split_file, "".join(f"{n}\n" for n in sorted(names)))
        logger.info("Context %s: %d labels in %s", split, len(names), out_dir)


def _read_detail_json(path: Path) -> dict:
    import json

    try:
        detail = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ZeroSegError(f"cannot read Detail annotations {path}: {error}") from None
    keys = ("images", "annos_segmentation")
    missing = [
        k for k in keys if not isinstance(detail, dict) or not isinstance(detail.get(k), list)
    ]
    if missing:
        raise ZeroSegError(
            f"{path} is not a Detail API trainval_merged.json (no {missing[0]} list)"
        )
    return detail
