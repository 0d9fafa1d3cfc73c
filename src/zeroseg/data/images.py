"""Unlabelled training images and image loading.

Any folder of images works, searched recursively (an ImageNet-style class-folder tree too; labels are
ignored). Images are resized so the short side is ``resize_short`` and centre-cropped to a square of
``image_size`` (the paper's only augmentation). Tensors are float (3, H, W) in [0, 1].
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from zeroseg.errors import ZeroSegError, first_line
from zeroseg.runtime.atomic import atomic_write_text

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".jpe"}


MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # PIL's decompression-bomb limit (~89.5 MP)
_HIGH_DEPTH = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0}


def open_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file as 8-bit RGB, as it is meant to be displayed, or raise a one-line
    ZeroSegError naming it.

    The EXIF orientation is applied; 16-bit and 32-bit integer and float greyscale images are
    scaled to 8 bits (not clipped); transparent pixels are shown over white. An image of more than
    ``max_pixels`` is refused from its header, before it is decoded (a JPEG is decoded at a
    reduced scale instead, with a warning naming both sizes).
    """
    path = Path(path)
    if not path.is_file():
        raise ZeroSegError(f"image {path} does not exist" if not path.exists() else
                           f"image {path} is not a file")  # fmt: skip
    try:
        with warnings.catch_warnings():  # PIL's bomb warning: the size guard below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(path)
        with img:
            _guard_size(img, path, max_pixels)
            img = ImageOps.exif_transpose(img)
            return _as_rgb(img)
    except Image.DecompressionBombError as error:
        raise ZeroSegError(f"image {path} is too large to read: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ZeroSegError(f"cannot read image {path}: {first_line(error)}") from None


def _guard_size(img: Image.Image, path: Path, max_pixels: int) -> None:
    """Refuse (or, for a JPEG, draft at a reduced scale) an image over ``max_pixels``."""
    width, height = img.size
    if width * height <= max_pixels:
        return
    if img.format == "JPEG":
        scale = 1
        while width * height > max_pixels * scale * scale and scale < 8:
            scale *= 2
        img.draft("RGB", (width // scale, height // scale))
        if img.size[0] * img.size[1] <= max_pixels:
            logger.warning("image %s is %dx%d; decoded at %dx%d", path, width, height, *img.size)
            return
    raise ZeroSegError(
        f"image {path} is {width}x{height} ({width * height / 1e6:.0f} MP), over the limit of "
        f"{max_pixels / 1e6:.0f} MP; downscale it first"
    )


def _as_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: high bit depths scaled, transparency over white."""
    if img.mode in _HIGH_DEPTH or img.mode in ("I", "F"):
        array = np.nan_to_num(np.asarray(img, dtype=np.float64))
        if img.mode == "F":
            high = 1.0 if array.max(initial=0) <= 1.0 else 255.0
        else:
            high = _HIGH_DEPTH.get(img.mode, 65535.0 if array.max(initial=0) > 255 else 255.0)
        grey = np.clip(array / high * 255 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def to_tensor(img: Image.Image) -> Tensor:
    """PIL RGB image -> (3, H, W) float tensor in [0, 1]."""
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)


def load_image(path: str | Path) -> Tensor:
    """Read an image file -> (3, H, W) float in [0, 1]."""
    return to_tensor(open_rgb(path))


def resize_center_crop(img: Image.Image, resize_short: int, crop: int) -> Image.Image:
    """Resize (bicubic) so the short side is ``resize_short``, then centre-crop ``crop`` x ``crop``."""
    w, h = img.size
    scale = resize_short / min(w, h)
    new_w, new_h = max(crop, round(w * scale)), max(crop, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - crop) // 2, (new_h - crop) // 2
    return img.crop((left, top, left + crop, top + crop))


def read_crop(path: str | Path, resize_short: int, crop: int) -> Image.Image:
    """The training crop of an image file (``open_rgb``, then ``resize_center_crop``), or a one-line
    ZeroSegError naming the file: the one reader of folders, the teacher cache and packs."""
    return resize_center_crop(open_rgb(path), resize_short, crop)


class BadImageLog:
    """Unreadable images met so far (distinct files, each with its one-line error), written to
    ``path`` atomically when it is set; a ZeroSegError once there are more than ``limit``.

    ``zeroseg pack``, the teacher cache and training from a folder all count through this class
    (``data.max_bad_images``).
    """

    def __init__(self, limit: int, path: Path | None = None) -> None:
        self.limit, self.path = limit, path
        self.entries: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def load(self) -> None:
        """Take in the images an earlier, interrupted run of the job listed in ``path``."""
        if self.path is None or not self.path.is_file():
            return
        try:
            listed = json.loads(self.path.read_text(encoding="utf-8"))["images"]
            self.entries.update({entry["path"]: entry["error"] for entry in listed})
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("ignoring %s: %s", self.path, first_line(error))

    def record(self, path: str | Path, error: str) -> None:
        """Count one unreadable image (once per file); raise past the limit."""
        key = str(path)
        if key in self.entries:
            return
        self.entries[key] = error
        logger.warning("skipped (%d so far): %s", len(self.entries), error)
        if self.path is not None:
            self.write()
        if len(self.entries) > self.limit:
            where = f", listed in {self.path}" if self.path is not None else ""
            raise ZeroSegError(
                f"{len(self.entries)} unreadable images, over data.max_bad_images={self.limit}"
                f"{where}; the last: {error}"
            )

    def write(self) -> None:
        assert self.path is not None
        images = [{"path": path, "error": error} for path, error in self.entries.items()]
        record = {"count": len(images), "limit": self.limit, "images": images}
        atomic_write_text(self.path, json.dumps(record, indent=1) + "\n")


class SkipUnreadable(Dataset):
    """The items of ``dataset`` (an ``ImageFolder``, or a dataset pairing its images with more),
    each followed by the index of the unreadable image it stands in for (-1 when none) and that
    image's error line ("" when none).

    An unreadable image i is replaced by the next readable one (i + 1, i + 2, ..., wrapping), or,
    with ``blank``, by a black crop (an ``ImageFolder`` only). The choice depends on the index
    alone, so every epoch, every rank and a resumed run see the same images in the same places.
    At most ``limit`` images in a row are tried before a one-line error.
    """

    def __init__(self, dataset, limit: int, blank: bool = False) -> None:
        self.dataset, self.limit, self.blank = dataset, limit, blank

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        first = ""
        tries = min(len(self.dataset), self.limit + 1)
        for offset in range(1 if self.blank else tries):
            try:
                item = self.dataset[(index + offset) % len(self.dataset)]
            except ZeroSegError as error:
                first = first or str(error)
                continue
            items = item if isinstance(item, tuple) else (item,)
            return (*items, index if first else -1, first)
        if self.blank and self.limit > 0:
            size = self.dataset.image_size
            return torch.zeros(3, size, size), index, first
        raise ZeroSegError(
            f"{first}, and the {tries - 1} images after it too: over data.max_bad_images="
            f"{self.limit}" if tries > 1 else f"{first} (data.max_bad_images={self.limit})"
        )  # fmt: skip


def find_images(root: str | Path) -> list[Path]:
    """All image files below folder ``root``, sorted, or the files a text file ``root`` lists (one
    path per line, relative to the list's folder; blank lines and ``#`` comments skipped, order
    kept); errors when the folder or list is missing or holds no image."""
    root = Path(root)
    if root.is_file():
        return _listed_images(root)
    if not root.is_dir():
        raise ZeroSegError(f"data folder {root} does not exist (set --data or data.root)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ZeroSegError(
            f"no images found under {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


def _listed_images(list_file: Path) -> list[Path]:
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ZeroSegError(f"cannot read image list {list_file}: {first_line(error)}") from None
    entries = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    files = [list_file.parent / entry for entry in entries]
    if not files:
        raise ZeroSegError(f"image list {list_file} names no image")
    return files


class ImageFolder(Dataset):
    """Unlabelled images under a folder (or named by a list file), as (3, image_size, image_size) [0,1] tensors."""

    def __init__(self, root: str | Path, image_size: int, resize_short: int) -> None:
        self.files = find_images(root)
        self.root = Path(root) if Path(root).is_dir() else Path(root).parent
        self.image_size = image_size
        self.resize_short = max(resize_short, image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        return to_tensor(read_crop(self.files[index], self.resize_short, self.image_size))
