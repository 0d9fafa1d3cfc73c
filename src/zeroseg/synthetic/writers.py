"""Writers: synthetic scenes in the formats real data comes in, so the library's readers are used.

A plain folder of unlabelled images (training), a VOC-style labelled tree (validation), and an
image folder with a ``captions.tsv`` (what the caption teacher could be trained from). Index files
are written last and atomically, so an interrupted write is never mistaken for a complete one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from zeroseg.errors import ZeroSegError
from zeroseg.synthetic.scenes import CLASS_NAMES, generate_scene

logger = logging.getLogger(__name__)


def voc_palette(num: int = 256) -> list[int]:
    """The PASCAL VOC colour map (bit-interleaved index colours), flattened R, G, B per index."""
    palette = []
    for index in range(num):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _save_image(array: np.ndarray, path: Path) -> None:
    if path.suffix == ".jpg":  # 4:4:4 keeps colour edges sharp at 64 px; q95 as VOC-like data
        Image.fromarray(array).save(path, quality=95, subsampling=0)
    else:
        Image.fromarray(array).save(path)


def write_training_images(
    directory: str | Path, n: int, seed: int = 0, size: int = 64, image_format: str = "png"
) -> Path:
    """A plain folder of ``n`` unlabelled scenes ``scene_000000.png`` ... (or ``.jpg``)."""
    if image_format not in ("png", "jpg"):
        raise ZeroSegError(f"image_format must be png or jpg, not {image_format!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _save_image(
            generate_scene(seed, i, size).image, directory / f"scene_{i:06d}.{image_format}"
        )
    logger.info("wrote %d training scenes (seed %d, %d px) to %s", n, seed, size, directory)
    return directory


def write_validation_tree(directory: str | Path, n: int, seed: int = 1, size: int = 64) -> Path:
    """A VOC-style labelled tree of ``n`` scenes.

    Layout: ``JPEGImages/NAME.jpg`` (quality 95, no chroma subsampling), ``SegmentationClass/NAME.png``
    (palette PNG holding indices into ``CLASS_NAMES``), ``ImageSets/Segmentation/val.txt`` (stems)
    and ``class_names.txt`` (one name per line, index order). The two index files are written last,
    atomically.
    """
    root = Path(directory)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    palette = voc_palette()
    stems = []
    for i in range(n):
        scene = generate_scene(seed, i, size)
        stem = f"synth_{i:06d}"
        _save_image(scene.image, root / "JPEGImages" / f"{stem}.jpg")
        label = Image.fromarray(scene.labels)  # uint8 -> "L"; putpalette makes it "P"
        label.putpalette(palette)
        label.save(root / "SegmentationClass" / f"{stem}.png")
        stems.append(stem)
    _write_text_atomic(root / "class_names.txt", "\n".join(CLASS_NAMES) + "\n")
    _write_text_atomic(root / "ImageSets" / "Segmentation" / "val.txt", "\n".join(stems) + "\n")
    logger.info("wrote %d validation scenes (seed %d, %d px) to %s", n, seed, size, root)
    return root


def write_caption_set(directory: str | Path, n: int, seed: int = 2, size: int = 64) -> Path:
    """``images/NAME.png`` plus ``captions.tsv`` (``NAME.png<TAB>caption`` per line, written last)."""
    root = Path(directory)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        scene = generate_scene(seed, i, size)
        name = f"scene_{i:06d}.png"
        _save_image(scene.image, root / "images" / name)
        lines.append(f"{name}\t{scene.caption}")
    _write_text_atomic(root / "captions.tsv", "\n".join(lines) + "\n")
    return root
