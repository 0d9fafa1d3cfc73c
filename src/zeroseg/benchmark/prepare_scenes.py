"""ADE20K and Cityscapes preparation without mmcv, and ``prepare_dataset`` for every benchmark.

- ``prepare_ade20k(root)``: checks ``ADEChallengeData2016`` as released (``images/{split}/*.jpg``,
  ``annotations/{split}/*.png`` with values 0..150); nothing needs converting. The histogram is of
  the 150 classes as evaluated: the released value v is class v - 1, and 0 ("other") is ignored.
- ``prepare_cityscapes(root)``: writes ``gtFine/{split}/CITY/NAME_gtFine_labelTrainIds.png`` from
  the released ``NAME_gtFine_labelIds.png`` with cityscapesScripts' table (``labels.py``: the 19
  evaluated classes get train ids 0..18, every other label id 255), then checks every image of
  ``leftImg8bit/{split}`` has its label. mmseg's ``tools/dataset_converters/cityscapes.py`` draws
  the same train ids from the polygon JSON files (``json2labelImg``): both draw the polygons in the
  same order and skip the license plate (id -1), so the label id of each pixel maps to its train id.
  Label ids above 33 are not in the released gtFine; they become 255 and are counted in a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zeroseg.benchmark.class_names import ADE20K_CLASSES, CITYSCAPES_CLASSES
from zeroseg.benchmark.datasets import read_label, resolve_root
from zeroseg.benchmark.prepare import (
    PrepareReport,
    finish_report,
    label_histogram,
    prepare_context,
    prepare_voc,
    write_label_png,
)
from zeroseg.benchmark.prepare_coco import prepare_coco_object, prepare_coco_stuff
from zeroseg.errors import ZeroSegError

# cityscapesScripts' label ids of the 19 evaluated classes, in train-id order (road .. bicycle)
CITYSCAPES_EVAL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
PREPARABLE = ("voc", "context", "coco-object", "coco-stuff", "ade", "cityscapes")


def prepare_ade20k(
    root: str | Path, split: str = "validation", verbose: bool = True
) -> PrepareReport:
    """Verify ADE20K (``ADEChallengeData2016`` or a folder holding it) and report.

    Raises:
        ZeroSegError: no images, a missing label, an RGB label or a label of another size.
    """
    subdirs = ["ADEChallengeData2016", "ade/ADEChallengeData2016"]
    root = resolve_root(root, subdirs, "images", "ADE20K")
    folders = sorted(d for d in (root / "images").iterdir() if d.is_dir())
    counts = {d.name: len(list(d.glob("*.jpg"))) for d in folders}
    images = sorted((root / "images" / split).glob("*.jpg"))
    if not images:
        raise ZeroSegError(f"ADE20K image folder {root / 'images' / split} has no .jpg images")
    labels = [root / "annotations" / split / f"{p.stem}.png" for p in images]
    for path in labels:
        if not path.is_file():
            raise ZeroSegError(f"{path} does not exist (the label of images/{split}/{path.stem})")
    pixels, present, ignored, unexpected = label_histogram(labels, 151, images)
    report = PrepareReport(
        "ade", counts, split, list(ADE20K_CLASSES), pixels[1:].tolist(), present[1:].tolist(),
        ignored + int(pixels[0]),
    )  # fmt: skip
    if unexpected:
        report.warnings.append(f"label values above 150 (value: pixels): {unexpected}")
    return finish_report(report, verbose)


def cityscapes_train_id_lut() -> np.ndarray:
    """(256,) uint8 lookup: Cityscapes label id -> train id (0..18, else 255)."""
    lut = np.full(256, 255, dtype=np.uint8)
    lut[list(CITYSCAPES_EVAL_IDS)] = np.arange(19)
    return lut


def prepare_cityscapes(
    root: str | Path,
    splits: tuple[str, ...] = ("val",),
    overwrite: bool = False,
    verbose: bool = True,
) -> PrepareReport:
    """Convert Cityscapes' ``*_gtFine_labelIds.png`` to train ids where needed, verify and report.

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/`` (or ``cityscapes/`` below it).
        splits: splits to convert and check (val alone is enough for evaluation).
        overwrite: convert again even if the train-id labels exist.

    Returns:
        The report; the histogram covers the last split.
    """
    root = resolve_root(root, ["cityscapes"], "leftImg8bit", "Cityscapes")
    counts: dict[str, int] = {}
    warnings: list[str] = []
    for split in splits:
        odd_files = _convert_label_ids(root / "gtFine" / split, overwrite)
        if odd_files:
            warnings.append(f"{split}: {odd_files} label files hold label ids above 33 (-> 255)")
        images = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        if not images:
            raise ZeroSegError(f"no leftImg8bit/{split}/CITY/*_leftImg8bit.png images in {root}")
        counts[split] = len(images)
    labels = [_cityscapes_label(root, path) for path in images]
    pixels, present, ignored, unexpected = label_histogram(labels, 19, images)
    report = PrepareReport(
        "cityscapes", counts, splits[-1], list(CITYSCAPES_CLASSES), pixels.tolist(),
        present.tolist(), ignored, warnings,
    )  # fmt: skip
    if unexpected:
        report.warnings.append(f"train ids outside 0..18 and 255 (value: pixels): {unexpected}")
    return finish_report(report, verbose)


def _convert_label_ids(gt_dir: Path, overwrite: bool) -> int:
    """Write the train-id label beside every label-id PNG below ``gt_dir``; returns how many
    label-id files held ids above 33."""
    lut, odd_files = cityscapes_train_id_lut(), 0
    sources = sorted(gt_dir.glob("*/*_gtFine_labelIds.png"))
    if not sources and not any(gt_dir.glob("*/*_gtFine_labelTrainIds.png")):
        raise ZeroSegError(f"no {gt_dir}/CITY/*_gtFine_labelIds.png (or labelTrainIds) labels")
    for path in sources:
        out = path.with_name(path.name.replace("_labelIds.png", "_labelTrainIds.png"))
        if overwrite or not out.is_file():
            ids = read_label(path)
            odd_files += int((ids > 33).any())
            write_label_png(lut[ids], out)
    return odd_files


def _cityscapes_label(root: Path, image: Path) -> Path:
    split, city = image.parent.parent.name, image.parent.name
    name = image.name.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png")
    label = root / "gtFine" / split / city / name
    if not label.is_file():
        raise ZeroSegError(f"{label} does not exist (the label of {image.name})")
    return label


def prepare_dataset(
    dataset: str,
    root: str | Path,
    annotations: str | Path | None = None,
    source: str | Path | None = None,
    overwrite: bool = False,
) -> PrepareReport:
    """``zeroseg prepare``: convert or verify one benchmark's files (a name of ``PREPARABLE``)."""
    if dataset == "voc":
        return prepare_voc(root)
    if dataset == "context":
        return prepare_context(root, annotations=annotations, overwrite=overwrite)
    if dataset == "coco-object":
        return prepare_coco_object(root, source=source, overwrite=overwrite)
    if dataset == "coco-stuff":
        return prepare_coco_stuff(root, source=source, overwrite=overwrite)
    if dataset == "ade":
        return prepare_ade20k(root)
    if dataset == "cityscapes":
        return prepare_cityscapes(root, overwrite=overwrite)
    raise ZeroSegError(
        f"unknown dataset {dataset!r} to prepare: use one of {', '.join(PREPARABLE)}"
    )
