"""COCO-style run-length encoding of binary masks, and a COCO JSON of label maps.

The RLE is COCO's compressed form (what ``pycocotools.mask.encode`` returns): run lengths of the
mask read in column-major order, starting with a run of zeros, each written as a sequence of
5-bit groups in printable characters, runs after the second stored as the difference to the run
two places before. Written here so that the core install needs no pycocotools; the tests decode
it with pycocotools.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def run_lengths(mask: np.ndarray) -> list[int]:
    """(H, W) boolean mask -> COCO run lengths (column-major, first run counts zeros)."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def encode_counts(runs: Sequence[int]) -> str:
    """COCO's compressed string of run lengths (``rleToString`` in the COCO API)."""
    chars = []
    for i, run in enumerate(runs):
        value = int(run) - (int(runs[i - 2]) if i > 2 else 0)
        more = True
        while more:
            group = value & 0x1F
            value >>= 5  # arithmetic shift, as on the C API's signed long
            more = value != -1 if group & 0x10 else value != 0
            if more:
                group |= 0x20
            chars.append(chr(group + 48))
    return "".join(chars)


def encode_mask(mask: np.ndarray) -> dict:
    """(H, W) boolean mask -> ``{"size": [H, W], "counts": str}`` (COCO compressed RLE)."""
    height, width = mask.shape
    return {"size": [int(height), int(width)], "counts": encode_counts(run_lengths(mask))}


def mask_bbox(mask: np.ndarray) -> list[int]:
    """COCO ``[x, y, width, height]`` of a non-empty mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


class COCODocument:
    """Collects label maps into one COCO JSON: images, categories, one RLE annotation per class.

    Args:
        class_names: display names; category id = label index + 1 (COCO ids start at 1).
    """

    def __init__(self, class_names: Sequence[str]) -> None:
        self.categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, file_name: str, labels: np.ndarray) -> None:
        """Add one image's (H, W) label map."""
        image_id = len(self.images) + 1
        height, width = labels.shape
        self.images.append(
            {"id": image_id, "file_name": file_name, "height": int(height), "width": int(width)}
        )
        for index in np.unique(labels):
            mask = labels == index
            self.annotations.append({
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": int(index) + 1,
                "segmentation": encode_mask(mask),
                "area": int(mask.sum()),
                "bbox": mask_bbox(mask),
                "iscrowd": 0,
            })  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }
