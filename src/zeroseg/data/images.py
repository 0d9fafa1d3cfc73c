"""Unlabelled training images and image loading.

Any folder of images works, searched recursively (an ImageNet-style class-folder tree too; labels are
ignored). Images are resized so the short side is ``resize_short`` and centre-cropped to a square of
``image_size`` (the paper's only augmentation). Tensors are float (3, H, W) in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from zeroseg.errors import ZeroSegError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".jpe"}


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image file as RGB, or raise a one-line ZeroSegError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ZeroSegError(f"image {path} does not exist")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ZeroSegError(f"cannot read image {path}: {error}") from None


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
    img = img.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - crop) // 2, (new_h - crop) // 2
    return img.crop((left, top, left + crop, top + crop))


def find_images(root: str | Path) -> list[Path]:
    """All image files below ``root``, sorted; errors when the folder is missing or empty."""
    root = Path(root)
    if not root.is_dir():
        raise ZeroSegError(f"data folder {root} does not exist (set --data or data.root)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ZeroSegError(
            f"no images found under {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


class ImageFolder(Dataset):
    """Unlabelled images under a folder, as (3, image_size, image_size) [0,1] tensors."""

    def __init__(self, root: str | Path, image_size: int, resize_short: int) -> None:
        self.root = Path(root)
        self.files = find_images(root)
        self.image_size = image_size
        self.resize_short = max(resize_short, image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        img = open_rgb(self.files[index])
        return to_tensor(resize_center_crop(img, self.resize_short, self.image_size))
