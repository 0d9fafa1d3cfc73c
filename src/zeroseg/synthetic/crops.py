"""Captioned views of scenes at every scale: what the synthetic teacher learns from.

Web CLIP has seen objects at every scale, whole and in part, with captions naming what a photo
shows. The synthetic teacher gets the same: crops of scenes, from the whole scene down to a cell of
a 4x4 grid and random boxes between, each captioned with what that crop shows. Captions are the
only supervision (no mask reaches the teacher's loss); the label map is only read to write them.

Caption rule for a crop. A rule that names an object only when much of the object is visible
teaches a teacher that close-ups of objects are background (the prototype's measurements,
``synthetic-world-notes.md``), so a large enough share of the crop always names it; and naming every
object part of 15 % of the crop made the teacher call half of the stuff-majority 2x2 cells by an
object (stuff cells right 51 / 69 / 77 % at 2x2 / 3x3 / 4x4, lab/NOTEBOOK.md), so that share is 30 %:
- an object class is named when it covers at least ``OBJECT_SHARE`` of the crop, or when at least
  ``OBJECT_INSIDE`` of its visible pixels in the scene are inside the crop and it covers at least
  ``OBJECT_MIN_SHARE`` of the crop;
- a stuff class is named when it covers at least ``STUFF_SHARE`` of the crop;
- if nothing passes, the crop's majority class is named.

Shapes: boxes are (y0, y1, x0, x1) in scene pixels; label maps (H, W) uint8.
"""

from __future__ import annotations

import numpy as np

from zeroseg.synthetic.scenes import CLASS_NAMES, NUM_STUFF, caption_for

OBJECT_SHARE = 0.3
OBJECT_INSIDE = 0.5
OBJECT_MIN_SHARE = 0.04
STUFF_SHARE = 0.1
GRIDS = (2, 3, 4)
KIND_PROBABILITIES = (0.15, 0.55, 0.3)  # whole scene, a grid cell, a random box


def grid_cells(size: int, grid: int) -> list[tuple[int, int, int, int]]:
    """The ``grid`` x ``grid`` cells of a square scene, raster order, integer-rounded edges."""
    edges = [round(k * size / grid) for k in range(grid + 1)]
    return [
        (edges[i], edges[i + 1], edges[j], edges[j + 1]) for i in range(grid) for j in range(grid)
    ]


def sample_box(rng: np.random.Generator, size: int) -> tuple[int, int, int, int]:
    """A crop of a square scene: the whole scene, a cell of a 2x2, 3x3 or 4x4 grid, or a random
    square box with side between a quarter of the scene and all of it."""
    kind = rng.choice(3, p=KIND_PROBABILITIES)
    if kind == 0:
        return (0, size, 0, size)
    if kind == 1:
        cells = grid_cells(size, int(rng.choice(GRIDS)))
        return cells[int(rng.integers(len(cells)))]
    side = int(rng.integers(max(1, size // 4), size + 1))
    y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
    return (y0, y0 + side, x0, x0 + side)


def named_classes(labels: np.ndarray, box: tuple[int, int, int, int]) -> list[int]:
    """Class indices the caption of ``box`` names (module docstring's rule), largest area first."""
    y0, y1, x0, x1 = box
    crop = labels[y0:y1, x0:x1]
    in_crop = np.bincount(crop.ravel(), minlength=len(CLASS_NAMES)).astype(np.float64)
    in_scene = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES)).astype(np.float64)
    share = in_crop / crop.size
    inside = in_crop / np.maximum(in_scene, 1)
    named = [k for k in range(NUM_STUFF) if share[k] >= STUFF_SHARE]
    named += [
        k
        for k in range(NUM_STUFF, len(CLASS_NAMES))
        if share[k] >= OBJECT_SHARE or (inside[k] >= OBJECT_INSIDE and share[k] >= OBJECT_MIN_SHARE)
    ]
    named = named or [int(share.argmax())]
    return sorted(named, key=lambda k: -share[k])


def crop_caption(rng: np.random.Generator, labels: np.ndarray, box) -> str:
    """The caption of one crop: its named classes, largest first; when stuff covers more of the
    crop than the named objects together, the stuff leads (``scenes.caption_for``)."""
    y0, y1, x0, x1 = box
    named = named_classes(labels, box)
    share = np.bincount(labels[y0:y1, x0:x1].ravel(), minlength=len(CLASS_NAMES))
    stuff = [k for k in named if k < NUM_STUFF]
    objects = [k for k in named if k >= NUM_STUFF]
    stuff_first = share[stuff].sum() > share[objects].sum()
    return caption_for(rng, objects, stuff, stuff_first=bool(stuff_first))
