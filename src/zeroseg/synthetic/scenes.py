"""Procedural scenes with per-pixel ground truth and captions (the synthetic world of issue #3).

A scene is one or two textured "stuff" regions (sky above grass, water on sand, ...) with 1 to 4
shapes painted over them; later shapes occlude earlier ones and the label map holds what is visible.
Every pixel carries a class index into ``CLASS_NAMES`` (stuff classes first, then object classes);
there is no separate background class. Each object class has its own surface family (pattern and
overlapping hue range, ``painting.SURFACE_FAMILIES``), so parts of objects can be recognised as well
as outlines; stuff regions are textures with jittered colour.

Everything is numpy and deterministic: scene ``i`` of seed ``s`` is drawn from
``np.random.default_rng([s, i])`` whatever the number of scenes asked for. ``painting.py`` paints
the pixels; ``writers.py`` writes scenes in the formats real data comes in (a folder of images; a
VOC-style labelled tree), so the library's own readers are used on synthetic data too.

Shapes: H x W pixels; images are uint8 (H, W, 3), label maps uint8 (H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zeroseg.synthetic.painting import (
    STUFF_TEXTURES,
    noise,
    nuisance,
    object_fill,
    object_mask,
    pixel_grid,
)

STUFF_CLASSES: tuple[str, ...] = ("sky", "grass", "water", "sand", "brick")
OBJECT_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "heart",
    "crescent",
)
CLASS_NAMES: tuple[str, ...] = STUFF_CLASSES + OBJECT_CLASSES
NUM_STUFF = len(STUFF_CLASSES)

# Bump WORLD_VERSION whenever the rendering changes: cached teachers of the old world retrain.
WORLD_VERSION = 2
STUFF_OMIT_PROBABILITY = 0.3  # captions naming the shapes only ("a photo of a star.")
CAPTION_MIN_AREA = 0.01  # a class is named in the caption when it covers >= 1% of the pixels
_SINGLE_SALT = 7919  # separates the single-object stream from the scene stream of the same seed

_TEMPLATES = (
    "a photo of {objects} on {stuff}.",
    "{objects} on {stuff}.",
    "a picture of {objects} with {stuff}.",
    "an image of {objects} and {stuff}.",
    "a photo of {objects} in front of {stuff}.",
    "{stuff} with {objects}.",
)
_STUFF_ONLY_TEMPLATES = ("a photo of {stuff}.", "a picture of {stuff}.")
_STUFF_FIRST_TEMPLATES = (
    "a photo of {stuff} with {objects}.",
    "{stuff} with {objects}.",
    "a picture of {stuff} and {objects}.",
)
_OBJECT_ONLY_TEMPLATES = ("a photo of {objects}.", "a picture of {objects}.", "{objects}.")


@dataclass(frozen=True)
class SceneObject:
    """One painted shape: its class index (into ``CLASS_NAMES``) and full (H, W) bool mask."""

    class_index: int
    mask: np.ndarray


@dataclass(frozen=True)
class Scene:
    """A rendered scene.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) uint8 class indices into ``CLASS_NAMES``, what is visible at each pixel.
        caption: names every class covering at least ``CAPTION_MIN_AREA`` of the image.
        objects: the shapes in painting order (later ones occlude earlier ones).
        stuff: the stuff class indices used (1 or 2; the first is the upper region).
    """

    image: np.ndarray
    labels: np.ndarray
    caption: str
    objects: tuple[SceneObject, ...]
    stuff: tuple[int, ...]


# ---------------------------------------------------------------------------------------------
# scenes


def _background(rng, size: int, split: bool) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Stuff image (H, W, 3), labels (H, W) and the stuff class indices (upper region first)."""
    if not split:
        k = int(rng.integers(NUM_STUFF))
        return STUFF_TEXTURES[STUFF_CLASSES[k]](rng, size, size), np.full((size, size), k), (k,)
    top, bottom = (int(k) for k in rng.choice(NUM_STUFF, 2, replace=False))
    if bottom == 0:  # the sky stays above
        top, bottom = bottom, top
    y, x = pixel_grid(size, size)
    wobble = (noise(rng, 1, size, 1, int(rng.integers(2, 6)))[0] - 0.5) * rng.uniform(0, 0.25)
    line = size * (rng.uniform(0.3, 0.7) + wobble) + rng.uniform(-0.25, 0.25) * (x[0] - size / 2)
    upper = y < line[None, :]
    image = np.where(
        upper[..., None],
        STUFF_TEXTURES[STUFF_CLASSES[top]](rng, size, size),
        STUFF_TEXTURES[STUFF_CLASSES[bottom]](rng, size, size),
    )
    return image, np.where(upper, top, bottom), (top, bottom)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def make_caption(rng: np.random.Generator, labels: np.ndarray, stuff: tuple[int, ...]) -> str:
    """A caption naming the classes that cover >= ``CAPTION_MIN_AREA`` of ``labels``.

    Shapes are named without colours ("a star and a circle"), in random order, always; stuff words
    follow in the order of ``stuff`` (upper region first), except in a share
    ``STUFF_OMIT_PROBABILITY`` of captions that name the shapes only, as prompts do.
    """
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES))
    named = counts >= CAPTION_MIN_AREA * labels.size
    objects = [k for k in range(NUM_STUFF, len(CLASS_NAMES)) if named[k]]
    return caption_for(rng, objects, [k for k in stuff if named[k]])


def caption_for(
    rng: np.random.Generator, objects: list[int], stuff: list[int], stuff_first: bool = False
) -> str:
    """A caption naming ``objects`` and ``stuff`` (class indices).

    By default objects are shuffled and come first, and a share ``STUFF_OMIT_PROBABILITY`` of
    captions leave the stuff out. With ``stuff_first`` (a view where stuff covers more than the
    objects) both lists keep the given order (largest first), the stuff is always named, and it
    leads the sentence ("grass with a star"), as a caption says what a photo mostly shows.
    """
    objects = list(objects)
    if not stuff_first:
        rng.shuffle(objects)
    stuff_words = _join([STUFF_CLASSES[k] for k in stuff] or [""])
    object_words = _join([f"a {CLASS_NAMES[k]}" for k in objects] or [""])
    if objects and stuff_first and stuff_words:
        template = str(rng.choice(_STUFF_FIRST_TEMPLATES))
    elif objects and (not stuff_words or rng.random() < STUFF_OMIT_PROBABILITY):
        template = str(rng.choice(_OBJECT_ONLY_TEMPLATES))
    elif not objects:
        template = str(rng.choice(_STUFF_ONLY_TEMPLATES))
    else:
        template = str(rng.choice(_TEMPLATES))
    return template.format(objects=object_words, stuff=stuff_words)


def render_scene(
    rng: np.random.Generator,
    size: int = 64,
    max_objects: int = 4,
    split_probability: float = 0.5,
    object_classes: list[int] | None = None,
    radius_range: tuple[float, float] | None = None,
) -> Scene:
    """Draw one scene.

    Args:
        rng: the random source (the scene is a pure function of its state).
        size: H = W in pixels.
        max_objects: 1 to ``max_objects`` shapes, unless ``object_classes`` is given.
        split_probability: chance of two stuff regions (an upper and a lower one).
        object_classes: fixed object class indices (into ``CLASS_NAMES``) to paint, in order.
        radius_range: object radius as a fraction of ``size``; default depends on the count.
    """
    image, labels, stuff = _background(rng, size, rng.random() < split_probability)
    if object_classes is None:
        count = int(rng.integers(1, max_objects + 1))
        object_classes = [int(k) for k in rng.integers(NUM_STUFF, len(CLASS_NAMES), count)]
    low, high = radius_range or ((0.14, 0.38) if len(object_classes) == 1 else (0.1, 0.3))
    objects = []
    for k in object_classes:
        mask = object_mask(rng, CLASS_NAMES[k], size, size, size * rng.uniform(low, high))
        image = np.where(mask[..., None], object_fill(rng, mask, image, CLASS_NAMES[k]), image)
        labels = np.where(mask, k, labels)
        objects.append(SceneObject(k, mask))
    image = nuisance(rng, image)
    labels = labels.astype(np.uint8)
    caption = make_caption(rng, labels, stuff)
    pixels = (image * 255 + 0.5).astype(np.uint8)
    return Scene(pixels, labels, caption, tuple(objects), stuff)


def generate_scene(
    seed: int,
    index: int,
    size: int = 64,
    max_objects: int = 4,
    radius_range: tuple[float, float] | None = None,
) -> Scene:
    """Scene ``index`` of the stream ``seed`` (independent of how many scenes are drawn)."""
    rng = np.random.default_rng([seed, index])
    return render_scene(rng, size, max_objects, radius_range=radius_range)


def generate_single_object_scene(seed: int, index: int, size: int = 64) -> Scene:
    """One object, fully or almost fully in view, on one stuff class (zero-shot classification).

    Classes cycle so that a set of ``len(OBJECT_CLASSES) * len(STUFF_CLASSES)`` consecutive indices
    holds every (object, stuff) pair once; everything else is random.
    """
    rng = np.random.default_rng([seed, index, _SINGLE_SALT])
    obj = NUM_STUFF + index % len(OBJECT_CLASSES)
    stuff = (index // len(OBJECT_CLASSES)) % NUM_STUFF
    image = STUFF_TEXTURES[STUFF_CLASSES[stuff]](rng, size, size)
    mask = object_mask(rng, CLASS_NAMES[obj], size, size, size * rng.uniform(0.2, 0.34), 1.0)
    image = np.where(mask[..., None], object_fill(rng, mask, image, CLASS_NAMES[obj]), image)
    labels = np.where(mask, obj, stuff).astype(np.uint8)
    caption = make_caption(rng, labels, (stuff,))
    pixels = (nuisance(rng, image) * 255 + 0.5).astype(np.uint8)
    return Scene(pixels, labels, caption, (SceneObject(obj, mask),), (stuff,))


# ---------------------------------------------------------------------------------------------
# in-memory sets


def scene_bank(
    n: int,
    seed: int,
    size: int = 64,
    max_objects: int = 4,
    radius_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Scenes ``0 .. n-1`` of stream ``seed`` as (N, H, W, 3) uint8 images and N captions."""
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    captions = []
    for i in range(n):
        scene = generate_scene(seed, i, size, max_objects, radius_range)
        images[i] = scene.image
        captions.append(scene.caption)
    return images, captions


def single_object_set(
    n: int, seed: int, size: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Single-object scenes for zero-shot accuracy.

    Returns:
        images (N, H, W, 3) uint8; objects (N,) int64 indices into ``OBJECT_CLASSES``;
        backgrounds (N,) int64 indices into ``STUFF_CLASSES``.
    """
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    objects, backgrounds = np.empty(n, np.int64), np.empty(n, np.int64)
    for i in range(n):
        scene = generate_single_object_scene(seed, i, size)
        images[i], objects[i], backgrounds[i] = (
            scene.image,
            scene.objects[0].class_index,
            scene.stuff[0],
        )
    return images, objects - NUM_STUFF, backgrounds
