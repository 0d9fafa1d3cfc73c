"""COCO-Object and COCO-Stuff-164k labels from the raw COCO-Stuff PNGs, without mmcv.

The raw labels (``stuffthingmaps_trainval2017/{split}/*.png``, or ``annotations/{split}/*.png`` as
mmseg lays them out) hold value v = COCO category id - 1: 0..90 things with COCO's id gaps, 91..181
stuff, 255 unlabelled. The train split is never needed to convert val.

- ``prepare_coco_object(root)``: ``annotations/{split}/NAME_instanceTrainIds.png`` with the 80
  things as 1..80 in COCO order and every stuff and unlabelled pixel as 0 (background, scored, as
  in GroupViT's converter).
- ``prepare_coco_stuff(root)``: ``annotations/{split}/NAME_labelTrainIds.png`` with the 80 things
  as 0..79, the 91 stuff classes as 80..170 and unlabelled as 255 (ignored), as mmseg's
  ``tools/dataset_converters/coco_stuff164k.py`` writes them. Where mmseg's converter leaves a
  value outside its table unchanged (COCO's unused ids, never in the released PNGs), this one
  writes 255 and warns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zeroseg.benchmark.class_names import COCO_OBJECT_CLASSES, COCO_STUFF_CLASSES
from zeroseg.benchmark.datasets import read_label
from zeroseg.benchmark.prepare import PrepareReport, finish_report, write_label_png
from zeroseg.errors import ZeroSegError

# The 80 COCO thing category ids, in COCO order (ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 unused).
COCO_THING_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)  # fmt: skip
COCO_STUFF_VALUES = range(91, 182)  # raw values of the 91 stuff classes (ids 92..182)


def coco_stuff_to_object_lut() -> np.ndarray:
    """(256,) uint8 lookup: raw COCO-Stuff value -> COCO-Object class (things 1..80, else 0)."""
    lut = np.zeros(256, dtype=np.uint8)
    for index, category_id in enumerate(COCO_THING_IDS, start=1):
        lut[category_id - 1] = index  # raw value = category id - 1
    return lut


def coco_raw_allowed() -> np.ndarray:
    """(256,) bool: the values a raw COCO-Stuff PNG may hold (80 things, 91 stuff, 255)."""
    allowed = np.zeros(256, dtype=bool)
    allowed[[i - 1 for i in COCO_THING_IDS]] = True
    allowed[list(COCO_STUFF_VALUES)] = True
    allowed[255] = True
    return allowed


def coco_raw_source(root: Path, source: Path | None, split: str) -> Path:
    """The first folder holding raw (not ``*TrainIds``) COCO-Stuff PNGs of ``split``."""
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
    lut = coco_stuff_to_object_lut()
    return convert_coco_stuff_maps(
        "coco-object", root, lut, "_instanceTrainIds.png", COCO_OBJECT_CLASSES,
        source=source, splits=splits, overwrite=overwrite, verbose=verbose,
    )  # fmt: skip


def convert_coco_stuff_maps(
    dataset: str,
    root: str | Path,
    lut: np.ndarray,
    suffix: str,
    class_names: tuple[str, ...],
    *,
    source: str | Path | None,
    splits: tuple[str, ...],
    overwrite: bool,
    verbose: bool,
) -> PrepareReport:
    """Map every raw COCO-Stuff PNG of ``splits`` through ``lut`` (256,) into
    ``annotations/{split}/NAME{suffix}`` (existing files kept unless ``overwrite``) and report.

    Values a raw PNG should not hold (COCO's unused category ids) go where ``lut`` sends them, and
    the files holding them are counted in a warning.
    """
    root = Path(root)
    allowed, num_classes = coco_raw_allowed(), len(class_names)
    counts, warnings = {}, []
    pixels = np.zeros(256, np.int64)  # the last split's, as are present and the image count
    present = np.zeros(256, np.int64)
    for split in splits:
        raw_dir = coco_raw_source(root, Path(source) if source else None, split)
        raw = sorted(p for p in raw_dir.glob("*.png") if "TrainIds" not in p.name)
        pixels, present = np.zeros(256, np.int64), np.zeros(256, np.int64)
        odd_files = 0
        for path in raw:
            out = root / "annotations" / split / f"{path.stem}{suffix}"
            values = read_label(path)
            odd_files += int(not allowed[values].all())
            label = lut[values]
            if overwrite or not out.is_file():
                write_label_png(label, out)
            counts_ = np.bincount(label.ravel(), minlength=256)
            pixels, present = pixels + counts_, present + (counts_ > 0)
        counts[split] = len(raw)
        warnings += coco_image_warnings(root, split, raw)
        if odd_files:
            warnings.append(
                f"{split}: {odd_files} label files hold values that are not raw COCO-Stuff ids "
                f"(mapped to {int(lut[11])}); use the raw stuffthingmaps_trainval2017 PNGs, not "
                "converted *TrainIds.png files"
            )
    report = PrepareReport(
        dataset, counts, splits[-1], list(class_names), pixels[:num_classes].tolist(),
        present[:num_classes].tolist(), int(pixels[255]), warnings,
    )  # fmt: skip
    return finish_report(report, verbose)


def coco_image_warnings(root: Path, split: str, raw: list[Path]) -> list[str]:
    """Warnings when ``images/{split}`` is empty or has images without a raw label."""
    image_dir = root / "images" / split
    images = {p.stem for p in image_dir.glob("*.jpg")} if image_dir.is_dir() else set()
    if not images:
        return [f"no images in {image_dir}: evaluation reads images/{split}/*.jpg"]
    missing = images - {p.stem for p in raw}
    if missing:
        return [f"{len(missing)} images in {image_dir} have no label, e.g. {sorted(missing)[0]}"]
    return []


def coco_stuff_lut() -> np.ndarray:
    """(256,) uint8 lookup: raw COCO-Stuff value -> COCO-Stuff-164k train id (things 0..79 in COCO
    order, stuff 80..170, unlabelled and any value that is no COCO-Stuff id 255)."""
    lut = np.full(256, 255, dtype=np.uint8)
    for index, category_id in enumerate(COCO_THING_IDS):
        lut[category_id - 1] = index
    lut[list(COCO_STUFF_VALUES)] = np.arange(80, 171)
    return lut


def prepare_coco_stuff(
    root: str | Path,
    source: str | Path | None = None,
    splits: tuple[str, ...] = ("val2017",),
    overwrite: bool = False,
    verbose: bool = True,
) -> PrepareReport:
    """Convert raw COCO-Stuff-164k labels to mmseg's 171 train ids
    (``annotations/{split}/NAME_labelTrainIds.png``) and report; the arguments are
    ``prepare_coco_object``'s."""
    return convert_coco_stuff_maps(
        "coco-stuff", root, coco_stuff_lut(), "_labelTrainIds.png", COCO_STUFF_CLASSES,
        source=source, splits=splits, overwrite=overwrite, verbose=verbose,
    )  # fmt: skip
