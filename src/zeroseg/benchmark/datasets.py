"""Readers of the evaluation benchmarks in their mmseg on-disk layouts (no mmcv).

Every dataset yields ``(image, label, name)``: image (3, H, W) float RGB in [0, 1], label (H, W)
int64 class indices with 255 = ignore, name = the file stem. Label PNGs are read as stored index
values (the palette of VOC's PNGs is ignored, never converted to RGB).

- ``VOCSegmentation``: ``VOCdevkit/VOC2012`` with ``JPEGImages``, ``SegmentationClass``,
  ``ImageSets/Segmentation/{split}.txt``; 21 classes (0 = background, 255 = object borders).
  Any tree in this layout works (a ``class_names.txt`` beside ``JPEGImages`` names its classes).
- ``PascalContextSegmentation``: ``VOCdevkit/VOC2010`` with ``SegmentationClassContext`` (0..59,
  0 = background) and ``ImageSets/SegmentationContext/{split}.txt``.
- ``COCOObjectSegmentation``: ``images/{split}/*.jpg`` and
  ``annotations/{split}/NAME_instanceTrainIds.png`` (0 = background incl. stuff, 1..80 things).
- ``COCOStuffSegmentation``: the same images, ``annotations/{split}/NAME_labelTrainIds.png``
  (171 classes, 255 = unlabelled).
- ``ADE20KSegmentation``: ``ADEChallengeData2016/images/{split}/*.jpg`` and
  ``annotations/{split}/*.png``; 150 classes, the released value 0 ignored (reduce_zero_label).
- ``CityscapesSegmentation``: ``leftImg8bit/{split}/CITY/NAME_leftImg8bit.png`` and
  ``gtFine/{split}/CITY/NAME_gtFine_labelTrainIds.png``; 19 classes, 255 = ignored.

``background_to_ignore`` gives the background-free variants (VOC20, Context59; ADE20K always):
label 0 becomes 255 and the other labels shift down by one (mmseg's ``reduce_zero_label``).
Class names are in ``class_names``; converters and checks in ``prepare`` and ``prepare_scenes``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from zeroseg.benchmark.class_names import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    COCO_OBJECT_CLASSES,
    COCO_STUFF_CLASSES,
    CONTEXT_CLASSES,
    VOC_CLASSES,
)
from zeroseg.data.images import load_image
from zeroseg.errors import ZeroSegError

IGNORE_INDEX = 255


def read_label(path: str | Path) -> np.ndarray:
    """A label PNG's stored index values -> (H, W) uint8/int array (palette ignored).

    Raises:
        ZeroSegError: missing or unreadable file, or an RGB image (a colour-coded label).
    """
    path = Path(path)
    if not path.is_file():
        raise ZeroSegError(f"label {path} does not exist")
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L", "I", "I;16"):
                raise ZeroSegError(
                    f"label {path} is a {img.mode} image; expected a palette or greyscale PNG "
                    "holding class indices"
                )
            return np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ZeroSegError(f"cannot read label {path}: {error}") from None


class SegmentationDataset(Dataset):
    """Images and label maps listed by name; subclasses say where the files are.

    Args:
        names: file stems, in order.
        class_names: one name per label index (after ``background_to_ignore``).
        background_to_ignore: map label 0 to 255 and shift the other labels down by one.
    """

    ignore_index = IGNORE_INDEX

    def __init__(
        self, names: Sequence[str], class_names: Sequence[str], background_to_ignore: bool = False
    ) -> None:
        self.names = list(names)
        self.background_to_ignore = background_to_ignore
        self.class_names = list(class_names[1:] if background_to_ignore else class_names)
        for name in self.names:
            for path in (self.image_path(name), self.label_path(name)):
                if not path.is_file():
                    raise ZeroSegError(f"{path} does not exist (listed for {name!r})")

    def image_path(self, name: str) -> Path:
        raise NotImplementedError

    def label_path(self, name: str) -> Path:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, str]:
        name = self.names[index]
        image = load_image(self.image_path(name))
        label_path = self.label_path(name)
        label = torch.from_numpy(read_label(label_path).astype(np.int64))
        if tuple(label.shape) != tuple(image.shape[-2:]):
            raise ZeroSegError(
                f"label {label_path} is {label.shape[1]}x{label.shape[0]} but its image is "
                f"{image.shape[2]}x{image.shape[1]}"
            )
        if self.background_to_ignore:
            label = reduce_zero_label(label)
        return image, label, name


def reduce_zero_label(label: Tensor) -> Tensor:
    """(H, W) labels: 0 -> 255, 255 stays, others -1 (mmseg's ``reduce_zero_label``)."""
    out = label - 1
    out[(label == 0) | (label == IGNORE_INDEX)] = IGNORE_INDEX
    return out


def read_split(path: Path) -> list[str]:
    """File stems listed one per line; a missing or empty file is a one-line error."""
    if not path.is_file():
        raise ZeroSegError(f"split file {path} does not exist")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ZeroSegError(f"split file {path} lists no images")
    return names


def resolve_root(root: str | Path, subdirs: Sequence[str], marker: str, what: str) -> Path:
    """The first of ``root/<subdir>`` (and ``root`` itself) that holds ``marker``."""
    root = Path(root)
    for candidate in [root] + [root / sub for sub in subdirs]:
        if (candidate / marker).is_dir():
            return candidate
    tried = ", ".join(str(Path(root) / sub) for sub in subdirs)
    raise ZeroSegError(f"{what} data root {root}: no {marker}/ in it or in {tried}")


class VOCSegmentation(SegmentationDataset):
    """PASCAL VOC 2012 (or any tree in its layout).

    Args:
        root: ``VOCdevkit/VOC2012`` itself or a folder containing ``VOCdevkit/VOC2012``.
        split: name of the split file in ``ImageSets/Segmentation``.
        class_names: one per label index; default ``root/class_names.txt`` if present, else VOC's 21.
        background_to_ignore: VOC20 (background -> 255, classes shifted down by one).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        class_names: Sequence[str] | None = None,
        background_to_ignore: bool = False,
    ) -> None:
        self.root = resolve_root(root, ["VOCdevkit/VOC2012", "VOC2012"], "JPEGImages", "VOC")
        if class_names is None:
            class_names = _class_names_file(self.root) or VOC_CLASSES
        names = read_split(self.root / "ImageSets" / "Segmentation" / f"{split}.txt")
        super().__init__(names, class_names, background_to_ignore)

    def image_path(self, name: str) -> Path:
        return self.root / "JPEGImages" / f"{name}.jpg"

    def label_path(self, name: str) -> Path:
        return self.root / "SegmentationClass" / f"{name}.png"


class PascalContextSegmentation(SegmentationDataset):
    """PASCAL Context, 60 classes (59 with ``background_to_ignore``).

    Args:
        root: ``VOCdevkit/VOC2010`` itself or a folder containing it.
        split: name of the split file in ``ImageSets/SegmentationContext``.
        background_to_ignore: Context59.
    """

    def __init__(
        self, root: str | Path, split: str = "val", background_to_ignore: bool = False
    ) -> None:
        self.root = resolve_root(root, ["VOCdevkit/VOC2010", "VOC2010"], "JPEGImages", "Context")
        names = read_split(self.root / "ImageSets" / "SegmentationContext" / f"{split}.txt")
        super().__init__(names, CONTEXT_CLASSES, background_to_ignore)

    def image_path(self, name: str) -> Path:
        return self.root / "JPEGImages" / f"{name}.jpg"

    def label_path(self, name: str) -> Path:
        return self.root / "SegmentationClassContext" / f"{name}.png"


class COCOObjectSegmentation(SegmentationDataset):
    """COCO-Object: COCO val2017 with 80 thing classes and background (stuff + unlabelled).

    Args:
        root: the COCO folder holding ``images/`` and ``annotations/`` (``zeroseg prepare
            coco-object`` writes the labels there).
        split: ``val2017`` (or ``train2017``).
    """

    suffix = "_instanceTrainIds.png"
    classes: tuple[str, ...] = COCO_OBJECT_CLASSES
    prepare = "coco-object"

    def __init__(self, root: str | Path, split: str = "val2017") -> None:
        self.root = resolve_root(root, ["coco", "coco_stuff164k"], "images", "COCO")
        self.split = split
        image_dir = self.root / "images" / split
        if not image_dir.is_dir():
            raise ZeroSegError(f"COCO image folder {image_dir} does not exist")
        names = sorted(p.stem for p in image_dir.glob("*.jpg"))
        if not names:
            raise ZeroSegError(f"COCO image folder {image_dir} has no .jpg images")
        _require_converted(self.root / "annotations" / split, f"*{self.suffix}", self.prepare)
        super().__init__(names, self.classes)

    def image_path(self, name: str) -> Path:
        return self.root / "images" / self.split / f"{name}.jpg"

    def label_path(self, name: str) -> Path:
        return self.root / "annotations" / self.split / f"{name}{self.suffix}"


class COCOStuffSegmentation(COCOObjectSegmentation):
    """COCO-Stuff-164k: the COCO images with 171 classes (80 things, 91 stuff), 255 = unlabelled.

    Labels are mmseg's ``annotations/{split}/NAME_labelTrainIds.png`` (train ids 0..170), which
    ``zeroseg prepare coco-stuff`` writes from the raw stuffthingmaps PNGs.
    """

    suffix = "_labelTrainIds.png"
    classes = COCO_STUFF_CLASSES
    prepare = "coco-stuff"


class ADE20KSegmentation(SegmentationDataset):
    """ADE20K (SceneParsing150): 150 classes; label 0 ("other") is ignored (reduce_zero_label).

    Args:
        root: ``ADEChallengeData2016`` or a folder holding it, with ``images/{split}/*.jpg`` and
            ``annotations/{split}/*.png`` (values 0..150) as released.
        split: ``validation`` (or ``training``).
    """

    def __init__(self, root: str | Path, split: str = "validation") -> None:
        subdirs = ["ADEChallengeData2016", "ade/ADEChallengeData2016"]
        self.root = resolve_root(root, subdirs, "images", "ADE20K")
        self.split = split
        image_dir = self.root / "images" / split
        names = sorted(p.stem for p in image_dir.glob("*.jpg"))
        if not names:
            raise ZeroSegError(f"ADE20K image folder {image_dir} has no .jpg images")
        # value 0 is ADE's "other objects": dropped like VOC20's background
        super().__init__(names, ("other", *ADE20K_CLASSES), background_to_ignore=True)

    def image_path(self, name: str) -> Path:
        return self.root / "images" / self.split / f"{name}.jpg"

    def label_path(self, name: str) -> Path:
        return self.root / "annotations" / self.split / f"{name}.png"


class CityscapesSegmentation(SegmentationDataset):
    """Cityscapes fine annotations: 19 train ids, 255 = ignored.

    Args:
        root: the folder holding ``leftImg8bit/{split}/CITY/NAME_leftImg8bit.png`` and
            ``gtFine/{split}/CITY/NAME_gtFine_labelTrainIds.png`` (``zeroseg prepare cityscapes``
            writes these from the released ``*_gtFine_labelIds.png``).
        split: ``val`` (or ``train``).
    """

    image_suffix = "_leftImg8bit.png"
    label_suffix = "_gtFine_labelTrainIds.png"

    def __init__(self, root: str | Path, split: str = "val") -> None:
        self.root = resolve_root(root, ["cityscapes"], "leftImg8bit", "Cityscapes")
        self.split = split
        image_dir = self.root / "leftImg8bit" / split
        images = sorted(image_dir.glob(f"*/*{self.image_suffix}"))
        if not images:
            raise ZeroSegError(
                f"Cityscapes image folder {image_dir} has no CITY/*{self.image_suffix}"
            )
        self.cities = {p.name[: -len(self.image_suffix)]: p.parent.name for p in images}
        _require_converted(self.root / "gtFine" / split, f"*/*{self.label_suffix}", "cityscapes")
        super().__init__(list(self.cities), CITYSCAPES_CLASSES)

    def image_path(self, name: str) -> Path:
        return (
            self.root
            / "leftImg8bit"
            / self.split
            / self.cities[name]
            / f"{name}{self.image_suffix}"
        )

    def label_path(self, name: str) -> Path:
        return self.root / "gtFine" / self.split / self.cities[name] / f"{name}{self.label_suffix}"


def _require_converted(folder: Path, pattern: str, dataset: str) -> None:
    """A one-line error naming ``zeroseg prepare`` when no converted label matches in ``folder``."""
    if not any(folder.glob(pattern)):
        raise ZeroSegError(
            f"no {pattern} labels in {folder}: convert the released labels with "
            f"`zeroseg prepare {dataset}`"
        )


def _class_names_file(root: Path) -> list[str] | None:
    path = root / "class_names.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ZeroSegError(f"{path} lists no classes")
    return names


# benchmark name -> (reader, keyword arguments)
# each reader takes the benchmark's root folder (and ``split``) first
BENCHMARKS: dict[str, tuple[Callable[..., SegmentationDataset], dict[str, Any]]] = {
    "voc": (VOCSegmentation, {}),
    "voc20": (VOCSegmentation, {"background_to_ignore": True}),
    "context": (PascalContextSegmentation, {}),
    "context59": (PascalContextSegmentation, {"background_to_ignore": True}),
    "coco-object": (COCOObjectSegmentation, {}),
    "coco-stuff": (COCOStuffSegmentation, {}),
    "ade": (ADE20KSegmentation, {}),
    "cityscapes": (CityscapesSegmentation, {}),
}


def build_dataset(name: str, root: str | Path, split: str | None = None) -> SegmentationDataset:
    """The validation set of a benchmark (a name of ``BENCHMARKS``)."""
    if name not in BENCHMARKS:
        raise ZeroSegError(f"unknown dataset {name!r}: use one of {', '.join(BENCHMARKS)}")
    reader, kwargs = BENCHMARKS[name]
    if split is not None:
        kwargs = {**kwargs, "split": split}
    return reader(root, **kwargs)
