"""Writers: synthetic scenes in the formats real data comes in, so the library's readers are used.

A plain folder of unlabelled images (training), a VOC-style labelled tree (validation), and an
image folder with a ``captions.tsv`` (what the caption teacher could be trained from). Index files
are written last and atomically, so an interrupted write is never mistaken for a complete one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from zeroseg.apps.visualize import palette
from zeroseg.errors import ZeroSegError
from zeroseg.runtime.atomic import atomic_write_text
from zeroseg.synthetic.scenes import CLASS_NAMES, generate_scene

logger = logging.getLogger(__name__)


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
    colors = palette().flatten().tolist()
    stems = []
    for i in range(n):
        scene = generate_scene(seed, i, size)
        stem = f"synth_{i:06d}"
        _save_image(scene.image, root / "JPEGImages" / f"{stem}.jpg")
        label = Image.fromarray(scene.labels)  # uint8 -> "L"; putpalette makes it "P"
        label.putpalette(colors)
        label.save(root / "SegmentationClass" / f"{stem}.png")
        stems.append(stem)
    atomic_write_text(root / "class_names.txt", "\n".join(CLASS_NAMES) + "\n")
    atomic_write_text(root / "ImageSets" / "Segmentation" / "val.txt", "\n".join(stems) + "\n")
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
    atomic_write_text(root / "captions.tsv", "\n".join(lines) + "\n")
    return root
