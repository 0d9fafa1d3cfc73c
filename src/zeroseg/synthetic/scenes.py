"""Procedural scenes with per-pixel ground truth and captions (the synthetic world of issue #3).

A scene is one or two textured "stuff" regions (sky above grass, water on sand, ...) with 1 to 4
shapes painted over them; later shapes occlude earlier ones and the label map holds what is visible.
Every pixel carries a class index into ``CLASS_NAMES`` (stuff classes first, then object classes);
there is no separate background class. Object colours and fill styles are drawn independently of the
shape, so only the outline tells a shape apart; stuff regions are textures with jittered colour.

Everything is numpy and deterministic: scene ``i`` of seed ``s`` is drawn from
``np.random.default_rng([s, i])`` whatever the number of scenes asked for. The writers at the end
produce the formats real data comes in (a folder of images; a VOC-style labelled tree), so the
library's own readers are used on synthetic data too.

Shapes: H x W pixels; images are uint8 (H, W, 3), label maps uint8 (H, W).
"""

from __future__ import annotations

import colorsys
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from zeroseg.errors import ZeroSegError

logger = logging.getLogger(__name__)

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
WORLD_VERSION = 1
MIN_CONTRAST = 0.45  # RGB distance between an object's colour and the mean colour under it
OUTLINE_PROBABILITY = 0.5  # chance of a one-pixel dark or light outline around an object
FILL_STYLE_PROBABILITIES = (0.55, 0.1, 0.1, 0.25)  # shaded flat, stripes, spots, grainy
STUFF_OMIT_PROBABILITY = 0.3  # captions naming the shapes only ("a photo of a star.")
CAPTION_MIN_AREA = 0.01  # a class is named in the caption when it covers >= 1% of the pixels
_SINGLE_SALT = 7919  # separates the single-object stream from the scene stream of the same seed
_ZOOM_SALT = 104729  # draws of the close-up crops, apart from the scene's own stream

_TEMPLATES = (
    "a photo of {objects} on {stuff}.",
    "{objects} on {stuff}.",
    "a picture of {objects} with {stuff}.",
    "an image of {objects} and {stuff}.",
    "a photo of {objects} in front of {stuff}.",
    "{stuff} with {objects}.",
)
_STUFF_ONLY_TEMPLATES = ("a photo of {stuff}.", "a picture of {stuff}.")
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
# noise and colour helpers


@lru_cache(maxsize=64)
def _interp_matrix(n: int, cells: int) -> np.ndarray:
    """(n, cells + 1) bilinear interpolation weights from a coarse grid to n pixels."""
    t = np.linspace(0.0, cells, n, dtype=np.float32)
    i0 = np.minimum(t.astype(np.int64), cells - 1)
    w = t - i0
    m = np.zeros((n, cells + 1), dtype=np.float32)
    m[np.arange(n), i0] = 1 - w
    m[np.arange(n), i0 + 1] = w
    return m


def _noise(rng: np.random.Generator, h: int, w: int, cells_y: int, cells_x: int) -> np.ndarray:
    """(h, w) smooth value noise in [0, 1] with the given number of cells per axis."""
    grid = rng.random((cells_y + 1, cells_x + 1), dtype=np.float32)
    return _interp_matrix(h, cells_y) @ grid @ _interp_matrix(w, cells_x).T


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) float row and column coordinates; cached, never modified in place."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y.flags.writeable = False
    x.flags.writeable = False
    return y, x


# ---------------------------------------------------------------------------------------------
# stuff textures: (rng, h, w) -> (h, w, 3) float in [0, 1]


def _sky(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    hue, sat = rng.uniform(0.53, 0.63), rng.uniform(0.35, 0.8)
    top, horizon = (
        _hsv(hue, sat, rng.uniform(0.6, 0.9)),
        _hsv(hue, sat * 0.35, rng.uniform(0.85, 1)),
    )
    ramp = (np.linspace(0, 1, h, dtype=np.float32) ** rng.uniform(0.6, 1.6))[:, None, None]
    img = top * (1 - ramp) + horizon * ramp + np.zeros((h, w, 1), np.float32)
    cover = rng.uniform(0.0, 0.9)
    clouds = _noise(rng, h, w, 2, int(rng.integers(2, 5))) + 0.4 * _noise(rng, h, w, 6, 8)
    alpha = np.clip((clouds - 1.3 + cover) / 0.25, 0, 1)[..., None] * rng.uniform(0.6, 1.0)
    return img * (1 - alpha) + alpha * rng.uniform(0.85, 1.0)


def _grass(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _hsv(rng.uniform(0.19, 0.36), rng.uniform(0.45, 0.9), rng.uniform(0.35, 0.7))
    blades = _noise(rng, h, w, int(rng.integers(2, 6)), int(w // rng.uniform(1.2, 2.2)))
    patches = _noise(rng, h, w, 3, 3)
    shade = 0.65 + 0.55 * blades + 0.3 * (patches - 0.5) + rng.normal(0, 0.05, (h, w))
    tint = _hsv(rng.uniform(0.12, 0.2), 0.7, 0.8) * np.clip(patches[..., None] - 0.55, 0, 0.2)
    return base * shade[..., None].astype(np.float32) + tint


def _water(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _hsv(rng.uniform(0.48, 0.62), rng.uniform(0.5, 0.95), rng.uniform(0.35, 0.75))
    y, x = _grid(h, w)
    warp = _noise(rng, h, w, 3, int(rng.integers(2, 5)))
    phase = y * rng.uniform(0.6, 1.3) + x * rng.uniform(-0.15, 0.15) + 2 * np.pi * warp
    ripple = np.sin(phase)
    shade = 1 + rng.uniform(0.12, 0.25) * ripple + rng.normal(0, 0.03, (h, w))
    glint = ((ripple > 0.9) & (_noise(rng, h, w, 8, 4) > 0.6))[..., None] * rng.uniform(0.2, 0.45)
    return base * shade[..., None] + glint


def _sand(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _hsv(rng.uniform(0.07, 0.14), rng.uniform(0.25, 0.55), rng.uniform(0.62, 0.92))
    y, x = _grid(h, w)
    angle = rng.uniform(0, np.pi)
    dunes = np.sin((x * np.cos(angle) + y * np.sin(angle)) * rng.uniform(0.4, 0.9))
    shade = 1 + 0.06 * dunes + 0.15 * (_noise(rng, h, w, 3, 3) - 0.5) + rng.normal(0, 0.07, (h, w))
    return base * shade[..., None]


def _brick(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    brick_h = rng.uniform(5, 9)
    brick_w = brick_h * rng.uniform(1.8, 2.8)
    y, x = _grid(h, w)
    ys = y + rng.uniform(0, brick_h)
    row = np.floor(ys / brick_h).astype(np.int64)
    xs = x + rng.uniform(0, brick_w) + (row % 2) * brick_w / 2
    col = np.floor(xs / brick_w).astype(np.int64)
    mortar = ((ys % brick_h) < 1.2) | ((xs % brick_w) < 1.2)
    colour = _hsv(rng.uniform(-0.02, 0.07), rng.uniform(0.45, 0.8), rng.uniform(0.4, 0.7))
    variation = 1 + rng.normal(0, 0.1, (16, 32)).astype(np.float32)
    shade = variation[row % 16, col % 32] + rng.normal(0, 0.04, (h, w))
    img = colour * shade[..., None]
    img[mortar] = _hsv(0.1, rng.uniform(0, 0.15), rng.uniform(0.55, 0.85))
    return img


_STUFF_TEXTURES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "sky": _sky,
    "grass": _grass,
    "water": _water,
    "sand": _sand,
    "brick": _brick,
}


# ---------------------------------------------------------------------------------------------
# shapes: masks from local coordinates u (right) and v (up), the object's radius being 1


def _polygon(u: np.ndarray, v: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of every (u, v) against (K, 2) vertices."""
    inside = np.zeros(u.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(points, np.roll(points, -1, axis=0)):
        if y1 == y2:
            continue
        crosses = ((y1 > v) != (y2 > v)) & (u < (x2 - x1) * (v - y1) / (y2 - y1) + x1)
        inside ^= crosses
    return inside


def _star_points(n: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = np.pi / 2 + np.arange(2 * n) * np.pi / n
    radii = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


_TRIANGLE = np.array([[0.0, 1.0], [-0.95, -0.62], [0.95, -0.62]])
_STAR = _star_points()


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rho2 = u * u + v * v
    if name == "circle":
        return rho2 <= 0.85**2
    if name == "ring":
        return (rho2 <= 0.95**2) & (rho2 >= rng.uniform(0.45, 0.6) ** 2)
    if name == "square":
        return (np.abs(u) <= 0.75) & (np.abs(v) <= 0.75)
    if name == "triangle":
        return _polygon(u, v, _TRIANGLE)
    if name == "star":
        return _polygon(u, v, _STAR)
    if name == "cross":
        arm = rng.uniform(0.25, 0.34)
        au, av = np.abs(u), np.abs(v)
        return ((au <= arm) & (av <= 0.95)) | ((av <= arm) & (au <= 0.95))
    if name == "heart":
        x, y = u * 1.25, v * 1.25 + 0.15
        return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0
    if name == "crescent":
        bite = (u - rng.uniform(0.35, 0.5)) ** 2 + v**2 > rng.uniform(0.7, 0.8) ** 2
        return (rho2 <= 0.95**2) & bite
    raise ValueError(name)


_ROTATION = {"circle": 0.0, "ring": 0.0, "square": 0.3, "triangle": 0.35, "cross": 0.3}
_ROTATION.update({"star": np.pi, "heart": 0.35, "crescent": 0.8})


def _object_mask(rng, name: str, h: int, w: int, radius: float, margin: float = 0.6) -> np.ndarray:
    """A shape's (h, w) bool mask at a random place; its centre is at least ``margin`` radii from
    the border (0.6: up to ~40% of the radius may leave the frame)."""
    y, x = _grid(h, w)
    cy = rng.uniform(radius * margin, h - radius * margin)
    cx = rng.uniform(radius * margin, w - radius * margin)
    theta = rng.uniform(-_ROTATION[name], _ROTATION[name])
    dx, dy = (x - cx) / radius, (cy - y) / radius
    u = np.cos(theta) * dx + np.sin(theta) * dy
    v = -np.sin(theta) * dx + np.cos(theta) * dy
    return _shape_mask(name, u * rng.uniform(0.85, 1.18), v, rng)


def _object_fill(rng, mask: np.ndarray, under: np.ndarray) -> np.ndarray:
    """(h, w, 3) appearance of an object: a random colour (contrasting with what lies under it)
    with a random fill style; shape-independent by construction."""
    h, w = mask.shape
    mean_under = under[mask].mean(axis=0) if mask.any() else np.full(3, 0.5, np.float32)
    for _ in range(12):
        colour = _hsv(rng.random(), rng.uniform(0.35, 1.0), rng.uniform(0.3, 1.0))
        if np.linalg.norm(colour - mean_under) > MIN_CONTRAST:
            break
    y, x = _grid(h, w)
    style = rng.choice(4, p=FILL_STYLE_PROBABILITIES)
    if style == 0:  # flat with a linear shading
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (x * np.cos(angle) + y * np.sin(angle)) / max(h, w)
        fill = colour * (1 + rng.uniform(0, 0.4) * (ramp - ramp[mask].mean()))[..., None]
    elif style == 1:  # stripes of two colours
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(3, 7)
        stripes = ((x * np.cos(angle) + y * np.sin(angle)) % period) < period / 2
        other = _hsv(rng.random(), rng.uniform(0.2, 1.0), rng.uniform(0.2, 1.0))
        fill = np.where(stripes[..., None], colour, other)
    elif style == 2:  # spots
        spots = _noise(rng, h, w, h // 5, w // 5) > rng.uniform(0.6, 0.75)
        other = _hsv(rng.random(), rng.uniform(0.2, 1.0), rng.uniform(0.2, 1.0))
        fill = np.where(spots[..., None], other, colour)
    else:  # grainy
        fill = colour * (1 + rng.normal(0, 0.12, (h, w, 1))).astype(np.float32)
    if rng.random() < OUTLINE_PROBABILITY:  # a one-pixel outline, darker or lighter
        core = mask.copy()
        core[1:] &= mask[:-1]
        core[:-1] &= mask[1:]
        core[:, 1:] &= mask[:, :-1]
        core[:, :-1] &= mask[:, 1:]
        fill[mask & ~core] = rng.choice([0.05, 0.95])
    return fill


# ---------------------------------------------------------------------------------------------
# scenes


def _background(rng, size: int, split: bool) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Stuff image (H, W, 3), labels (H, W) and the stuff class indices (upper region first)."""
    if not split:
        k = int(rng.integers(NUM_STUFF))
        return _STUFF_TEXTURES[STUFF_CLASSES[k]](rng, size, size), np.full((size, size), k), (k,)
    top, bottom = (int(k) for k in rng.choice(NUM_STUFF, 2, replace=False))
    if bottom == 0:  # the sky stays above
        top, bottom = bottom, top
    y, x = _grid(size, size)
    wobble = (_noise(rng, 1, size, 1, int(rng.integers(2, 6)))[0] - 0.5) * rng.uniform(0, 0.25)
    line = size * (rng.uniform(0.3, 0.7) + wobble) + rng.uniform(-0.25, 0.25) * (x[0] - size / 2)
    upper = y < line[None, :]
    image = np.where(
        upper[..., None],
        _STUFF_TEXTURES[STUFF_CLASSES[top]](rng, size, size),
        _STUFF_TEXTURES[STUFF_CLASSES[bottom]](rng, size, size),
    )
    return image, np.where(upper, top, bottom), (top, bottom)


def _nuisance(rng, image: np.ndarray) -> np.ndarray:
    """Global colour jitter, sensor noise and (sometimes) a Gaussian blur."""
    image = image * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    image = (image - 0.5) * rng.uniform(0.8, 1.15) + 0.5 + rng.uniform(-0.06, 0.06)
    image = image + rng.normal(0, rng.uniform(0, 0.035), image.shape)
    if rng.random() < 0.35:
        sigma = rng.uniform(0.4, 1.1)
        taps = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2)
        taps /= taps.sum()
        for axis in (0, 1):
            padded = np.pad(image, [(2, 2) if a == axis else (0, 0) for a in range(3)], "edge")
            n = image.shape[axis]
            image = sum(
                t * np.take(padded, np.arange(i, i + n), axis=axis) for i, t in enumerate(taps)
            )
    return np.clip(image, 0, 1)


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
    rng.shuffle(objects)
    stuff_words = _join([STUFF_CLASSES[k] for k in stuff if named[k]] or [""])
    object_words = _join([f"a {CLASS_NAMES[k]}" for k in objects] or [""])
    if objects and (not stuff_words or rng.random() < STUFF_OMIT_PROBABILITY):
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
        mask = _object_mask(rng, CLASS_NAMES[k], size, size, size * rng.uniform(low, high))
        image = np.where(mask[..., None], _object_fill(rng, mask, image), image)
        labels = np.where(mask, k, labels)
        objects.append(SceneObject(k, mask))
    image = _nuisance(rng, image)
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
    image = _STUFF_TEXTURES[STUFF_CLASSES[stuff]](rng, size, size)
    mask = _object_mask(rng, CLASS_NAMES[obj], size, size, size * rng.uniform(0.2, 0.34), 1.0)
    image = np.where(mask[..., None], _object_fill(rng, mask, image), image)
    labels = np.where(mask, obj, stuff).astype(np.uint8)
    caption = make_caption(rng, labels, (stuff,))
    pixels = (_nuisance(rng, image) * 255 + 0.5).astype(np.uint8)
    return Scene(pixels, labels, caption, (SceneObject(obj, mask),), (stuff,))


# ---------------------------------------------------------------------------------------------
# in-memory sets and writers


def zoom_in(scene: Scene, rng: np.random.Generator, fraction: float) -> Scene:
    """The same scene seen through a longer lens: a random square crop of side ``fraction * H``,
    resized back to H x W (image bicubic, labels nearest), captioned afresh from what is in view.
    """
    size = scene.labels.shape[0]
    side = max(1, round(fraction * size))
    y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, 2))

    def crop(array: np.ndarray, resample: Image.Resampling) -> np.ndarray:
        window = Image.fromarray(array[y0 : y0 + side, x0 : x0 + side])
        return np.asarray(window.resize((size, size), resample))

    labels = crop(scene.labels, Image.Resampling.NEAREST)
    objects = tuple(
        SceneObject(o.class_index, crop(o.mask.astype(np.uint8), Image.Resampling.NEAREST) > 0)
        for o in scene.objects
    )
    stuff = tuple(k for k in scene.stuff if (labels == k).any())
    caption = make_caption(rng, labels, stuff)
    return Scene(crop(scene.image, Image.Resampling.BICUBIC), labels, caption, objects, stuff)


def scene_bank(
    n: int,
    seed: int,
    size: int = 64,
    max_objects: int = 4,
    radius_range: tuple[float, float] | None = None,
    zoom_probability: float = 0.0,
    zoom_range: tuple[float, float] = (0.25, 0.75),
) -> tuple[np.ndarray, list[str]]:
    """Scenes ``0 .. n-1`` of stream ``seed`` as (N, H, W, 3) uint8 images and N captions.

    A share ``zoom_probability`` of them are close-ups (``zoom_in``, side fraction drawn from
    ``zoom_range``): still whole photographs with captions of what they show.
    """
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    captions = []
    for i in range(n):
        scene = generate_scene(seed, i, size, max_objects, radius_range)
        rng = np.random.default_rng([seed, i, _ZOOM_SALT])
        if rng.random() < zoom_probability:
            scene = zoom_in(scene, rng, rng.uniform(*zoom_range))
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
