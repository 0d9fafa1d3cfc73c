"""Unlabelled training images and image loading.

Any folder of images works, searched recursively (an ImageNet-style class-folder tree too; labels are
ignored). Images are resized so the short side is ``resize_short`` and centre-cropped to a square of
``image_size`` (the paper's only augmentation). Tensors are float (3, H, W) in [0, 1].
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from zeroseg.errors import ZeroSegError, first_line

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
        img = open_rgb(self.files[index])
        return to_tensor(resize_center_crop(img, self.resize_short, self.image_size))
