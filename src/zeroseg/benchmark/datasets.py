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

``background_to_ignore`` gives the background-free variants (VOC20, Context59): label 0 becomes 255
and the other labels shift down by one (mmseg's ``reduce_zero_label``).
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

from zeroseg.data.images import load_image
from zeroseg.errors import ZeroSegError

IGNORE_INDEX = 255

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
CONTEXT_CLASSES = (
    "background", "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat",
    "book", "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth",
    "computer", "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass",
    "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate",
    "platform", "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky",
    "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water",
    "window", "wood",
)  # fmt: skip
COCO_OBJECT_CLASSES = (
    "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


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

    def __init__(self, root: str | Path, split: str = "val2017") -> None:
        self.root = resolve_root(root, ["coco"], "images", "COCO")
        image_dir = self.root / "images" / split
        if not image_dir.is_dir():
            raise ZeroSegError(f"COCO image folder {image_dir} does not exist")
        names = sorted(p.stem for p in image_dir.glob("*.jpg"))
        if not names:
            raise ZeroSegError(f"COCO image folder {image_dir} has no .jpg images")
        self.split = split
        super().__init__(names, COCO_OBJECT_CLASSES)

    def image_path(self, name: str) -> Path:
        return self.root / "images" / self.split / f"{name}.jpg"

    def label_path(self, name: str) -> Path:
        return self.root / "annotations" / self.split / f"{name}{self.suffix}"


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
}


def build_dataset(name: str, root: str | Path, split: str | None = None) -> SegmentationDataset:
    """The validation set of a benchmark (voc, voc20, context, context59, coco-object)."""
    if name not in BENCHMARKS:
        raise ZeroSegError(f"unknown dataset {name!r}: use one of {', '.join(BENCHMARKS)}")
    reader, kwargs = BENCHMARKS[name]
    if split is not None:
        kwargs = {**kwargs, "split": split}
    return reader(root, **kwargs)
