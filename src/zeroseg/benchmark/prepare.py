"""Benchmark preparation without mmcv: convert what needs converting, then verify and report.

- ``prepare_voc(root)``: checks ``VOCdevkit/VOC2012`` (split files, images, palette labels).
- ``prepare_context(root)``: checks ``VOCdevkit/VOC2010/SegmentationClassContext``; if it is missing,
  converts the Detail API annotations (``trainval_merged.json``, read directly, masks decoded with
  pycocotools; mmseg's class mapping).
- ``prepare_coco_object(root)``: converts the raw COCO-Stuff-164k label PNGs
  (``stuffthingmaps_trainval2017/{split}/*.png``: value v is COCO category id v + 1, 0..90 things
  with COCO's id gaps, 91..181 stuff, 255 unlabelled) into ``annotations/{split}/
  NAME_instanceTrainIds.png`` with the 80 things as 1..80 in COCO order and every stuff and
  unlabelled pixel as 0 (background, scored, as in GroupViT's converter). The train split is not
  needed to convert val.

Each writes files atomically, prints per-split image counts and a class histogram, and warns when a
count differs from the official size (VOC val 1,449; Context val 5,105; COCO val2017 5,000).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from zeroseg.benchmark.datasets import (
    COCO_OBJECT_CLASSES,
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
}
# The 80 COCO thing category ids, in COCO order (ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 unused).
COCO_THING_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)  # fmt: skip
COCO_STUFF_VALUES = range(91, 182)  # raw values of the 91 stuff classes (ids 92..182)
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


def _finish(report: PrepareReport, verbose: bool) -> PrepareReport:
    for split, count in report.counts.items():
        expected = KNOWN_SIZES.get(report.dataset, {}).get(split)
        if expected is not None and count != expected:
            report.warnings.append(f"{split} has {count} images, the official split has {expected}")
    for warning in report.warnings:
        logger.warning("%s: %s", report.dataset, warning)
    if verbose:
        print(report.format())
    return report


def _write_png(array: np.ndarray, path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), mode="L").save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _histogram(
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
    pixels, present, ignored, unexpected = _histogram(labels, len(class_names), images)
    report = PrepareReport(
        dataset, counts, split, list(class_names), pixels.tolist(), present.tolist(), ignored
    )
    if unexpected:
        report.warnings.append(f"label values outside the classes (value: pixels): {unexpected}")
    return _finish(report, verbose)


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
                _write_png(context_index_map(mask, name), path)
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


def coco_stuff_to_object_lut() -> np.ndarray:
    """(256,) uint8 lookup: raw COCO-Stuff value -> COCO-Object class (things 1..80, else 0)."""
    lut = np.zeros(256, dtype=np.uint8)
    for index, category_id in enumerate(COCO_THING_IDS, start=1):
        lut[category_id - 1] = index  # raw value = category id - 1
    return lut


def _coco_raw_allowed() -> np.ndarray:
    allowed = np.zeros(256, dtype=bool)
    allowed[[i - 1 for i in COCO_THING_IDS]] = True
    allowed[list(COCO_STUFF_VALUES)] = True
    allowed[255] = True
    return allowed


def _coco_source(root: Path, source: Path | None, split: str) -> Path:
    candidates = [source / split] if source else []
    candidates += [root / "stuffthingmaps_trainval2017" / split, root / "annotations" / split]
    for folder in candidates:
        if folder.is_dir() and any(p for p in folder.glob("*.png") if "TrainIds" not in p.name):
            return folder
    tried = ", ".join(str(c) for c in candidates)
    raise ZeroSegError(f"no raw COCO-Stuff label PNGs for {split} in {tried}")


def prepare_coco_object(
    root: str | Path,
    source: str | Path | None = None,
    splits: tuple[str, ...] = ("val2017",),
    overwrite: bool = False,
    verbose: bool = True,
) -> PrepareReport:
    """Convert raw COCO-Stuff-164k labels to COCO-Object and report.

    Args:
        root: the COCO folder holding ``images/{split}``; labels go to ``annotations/{split}``.
        source: folder holding ``{split}/*.png`` raw labels (default: ``root/
            stuffthingmaps_trainval2017`` or ``root/annotations``).
        splits: splits to convert (val2017 alone is enough for evaluation).
        overwrite: convert again even if the output exists.

    Returns:
        The report; the histogram covers the last split.
    """
    root = Path(root)
    lut, allowed = coco_stuff_to_object_lut(), _coco_raw_allowed()
    counts, warnings = {}, []
    pixels, present = np.zeros(81, np.int64), np.zeros(81, np.int64)  # per split, below
    for split in splits:
        raw_dir = _coco_source(root, Path(source) if source else None, split)
        raw = sorted(p for p in raw_dir.glob("*.png") if "TrainIds" not in p.name)
        out_dir = root / "annotations" / split
        pixels, present = np.zeros(81, np.int64), np.zeros(81, np.int64)
        odd_files = 0
        for path in raw:
            out = out_dir / f"{path.stem}_instanceTrainIds.png"
            values = read_label(path)
            odd_files += int(not allowed[values].all())
            label = lut[values]
            if overwrite or not out.is_file():
                _write_png(label, out)
            counts_ = np.bincount(label.ravel(), minlength=81)
            pixels, present = pixels + counts_, present + (counts_ > 0)
        counts[split] = len(raw)
        warnings += _coco_image_warnings(root, split, raw)
        if odd_files:
            warnings.append(
                f"{split}: {odd_files} label files hold values that are not raw COCO-Stuff ids "
                "(mapped to background); use the raw stuffthingmaps_trainval2017 PNGs, not "
                "converted *_labelTrainIds.png files"
            )
    report = PrepareReport(
        "coco-object", counts, splits[-1], list(COCO_OBJECT_CLASSES), pixels.tolist(),
        present.tolist(), warnings=warnings,
    )  # fmt: skip
    return _finish(report, verbose)


def _coco_image_warnings(root: Path, split: str, raw: list[Path]) -> list[str]:
    image_dir = root / "images" / split
    images = {p.stem for p in image_dir.glob("*.jpg")} if image_dir.is_dir() else set()
    if not images:
        return [f"no images in {image_dir}: evaluation reads images/{split}/*.jpg"]
    missing = images - {p.stem for p in raw}
    if missing:
        return [f"{len(missing)} images in {image_dir} have no label, e.g. {sorted(missing)[0]}"]
    return []


def prepare_dataset(
    dataset: str,
    root: str | Path,
    annotations: str | Path | None = None,
    source: str | Path | None = None,
    overwrite: bool = False,
) -> PrepareReport:
    """``zeroseg prepare``: convert or verify one benchmark's files (voc, context, coco-object)."""
    if dataset == "voc":
        return prepare_voc(root)
    if dataset == "context":
        return prepare_context(root, annotations=annotations, overwrite=overwrite)
    if dataset == "coco-object":
        return prepare_coco_object(root, source=source, overwrite=overwrite)
    raise ZeroSegError(f"unknown dataset {dataset!r} to prepare: use voc, context or coco-object")
