"""How the synthetic world paints pixels: stuff textures, shape masks, object surfaces, nuisances.

World version 2: each object class has its own family of surfaces (a pattern, a hue range that
overlaps its neighbours', a period and a contrast range; ``SURFACE_FAMILIES``), so a part of an
object tells its class, as fur or a wheel does in a photo; the outline still matters.

Pure numpy functions of a ``np.random.Generator``; ``scenes.py`` composes them into scenes. Images
are float (H, W, 3) in [0, 1] until ``scenes.py`` quantises them.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MIN_CONTRAST = 0.45  # RGB distance between an object's colour and the mean colour under it
OUTLINE_PROBABILITY = 0.5  # chance of a one-pixel dark or light outline around an object


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


def noise(rng: np.random.Generator, h: int, w: int, cells_y: int, cells_x: int) -> np.ndarray:
    """(h, w) smooth value noise in [0, 1] with the given number of cells per axis."""
    grid = rng.random((cells_y + 1, cells_x + 1), dtype=np.float32)
    return _interp_matrix(h, cells_y) @ grid @ _interp_matrix(w, cells_x).T


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


@lru_cache(maxsize=8)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
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
    clouds = noise(rng, h, w, 2, int(rng.integers(2, 5))) + 0.4 * noise(rng, h, w, 6, 8)
    alpha = np.clip((clouds - 1.3 + cover) / 0.25, 0, 1)[..., None] * rng.uniform(0.6, 1.0)
    return img * (1 - alpha) + alpha * rng.uniform(0.85, 1.0)


def _grass(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _hsv(rng.uniform(0.19, 0.36), rng.uniform(0.45, 0.9), rng.uniform(0.35, 0.7))
    blades = noise(rng, h, w, int(rng.integers(2, 6)), int(w // rng.uniform(1.2, 2.2)))
    patches = noise(rng, h, w, 3, 3)
    shade = 0.65 + 0.55 * blades + 0.3 * (patches - 0.5) + rng.normal(0, 0.05, (h, w))
    tint = _hsv(rng.uniform(0.12, 0.2), 0.7, 0.8) * np.clip(patches[..., None] - 0.55, 0, 0.2)
    return base * shade[..., None].astype(np.float32) + tint


def _water(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _hsv(rng.uniform(0.48, 0.62), rng.uniform(0.5, 0.95), rng.uniform(0.35, 0.75))
    y, x = pixel_grid(h, w)
    warp = noise(rng, h, w, 3, int(rng.integers(2, 5)))
    phase = y * rng.uniform(0.6, 1.3) + x * rng.uniform(-0.15, 0.15) + 2 * np.pi * warp
    ripple = np.sin(phase)
    shade = 1 + rng.uniform(0.12, 0.25) * ripple + rng.normal(0, 0.03, (h, w))
    glint = ((ripple > 0.9) & (noise(rng, h, w, 8, 4) > 0.6))[..., None] * rng.uniform(0.2, 0.45)
    return base * shade[..., None] + glint


def _sand(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _hsv(rng.uniform(0.07, 0.14), rng.uniform(0.25, 0.55), rng.uniform(0.62, 0.92))
    y, x = pixel_grid(h, w)
    angle = rng.uniform(0, np.pi)
    dunes = np.sin((x * np.cos(angle) + y * np.sin(angle)) * rng.uniform(0.4, 0.9))
    shade = 1 + 0.06 * dunes + 0.15 * (noise(rng, h, w, 3, 3) - 0.5) + rng.normal(0, 0.07, (h, w))
    return base * shade[..., None]


def _brick(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    brick_h = rng.uniform(5, 9)
    brick_w = brick_h * rng.uniform(1.8, 2.8)
    y, x = pixel_grid(h, w)
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


STUFF_TEXTURES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
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


def object_mask(rng, name: str, h: int, w: int, radius: float, margin: float = 0.6) -> np.ndarray:
    """A shape's (h, w) bool mask at a random place; its centre is at least ``margin`` radii from
    the border (0.6: up to ~40% of the radius may leave the frame)."""
    y, x = pixel_grid(h, w)
    cy = rng.uniform(radius * margin, h - radius * margin)
    cx = rng.uniform(radius * margin, w - radius * margin)
    theta = rng.uniform(-_ROTATION[name], _ROTATION[name])
    dx, dy = (x - cx) / radius, (cy - y) / radius
    u = np.cos(theta) * dx + np.sin(theta) * dy
    v = -np.sin(theta) * dx + np.cos(theta) * dy
    return _shape_mask(name, u * rng.uniform(0.85, 1.18), v, rng)


@dataclass(frozen=True)
class SurfaceFamily:
    """The surface appearance shared by one object class, varied within the class.

    Attributes:
        pattern: the pattern painted on the object (``PATTERNS``), two colours mixed by it.
        hue: (low, high) hue range of the main colour; neighbouring classes' ranges overlap, so no
            single colour decides the class.
        period: (low, high) pattern period in pixels.
        contrast: (low, high) value difference of the second colour from the first.
    """

    pattern: str
    hue: tuple[float, float]
    period: tuple[float, float]
    contrast: tuple[float, float] = (0.25, 0.6)


# One family per object class (``scenes.OBJECT_CLASSES`` order): hue ranges 0.2 wide, centres
# 1/8 apart, so each range overlaps both neighbours'; the pattern is the class's part structure.
SURFACE_FAMILIES: dict[str, SurfaceFamily] = {
    "circle": SurfaceFamily("dots", (-0.1, 0.1), (5.0, 8.0)),
    "square": SurfaceFamily("checks", (0.025, 0.225), (4.0, 7.0)),
    "triangle": SurfaceFamily("stripes", (0.15, 0.35), (3.0, 6.0)),
    "star": SurfaceFamily("waves", (0.275, 0.475), (5.0, 9.0)),
    "cross": SurfaceFamily("grid", (0.4, 0.6), (4.0, 7.0)),
    "ring": SurfaceFamily("rings", (0.525, 0.725), (3.0, 6.0)),
    "heart": SurfaceFamily("speckle", (0.65, 0.85), (2.0, 4.0)),
    "crescent": SurfaceFamily("zigzag", (0.775, 0.975), (4.0, 8.0)),
}


def _pattern(rng, name: str, y: np.ndarray, x: np.ndarray, period: float, centre) -> np.ndarray:
    """(h, w) mix in [0, 1] between an object's two colours (1 = second colour)."""
    angle = rng.uniform(0, np.pi)
    along = x * np.cos(angle) + y * np.sin(angle)
    across = -x * np.sin(angle) + y * np.cos(angle)
    if name == "dots":
        fu, fv = (along / period) % 1 - 0.5, (across / period) % 1 - 0.5
        return (fu * fu + fv * fv < rng.uniform(0.06, 0.12)).astype(np.float32)
    if name == "checks":
        return ((np.floor(along / period) + np.floor(across / period)) % 2).astype(np.float32)
    if name == "stripes":
        return ((along % period) < period * rng.uniform(0.35, 0.6)).astype(np.float32)
    if name == "waves":
        return 0.5 + 0.5 * np.sin(2 * np.pi * along / period + 2 * np.sin(across / period))
    if name == "grid":
        width = rng.uniform(1.0, 1.6)
        return (((along % period) < width) | ((across % period) < width)).astype(np.float32)
    if name == "rings":
        radius = np.sqrt((y - centre[0]) ** 2 + (x - centre[1]) ** 2)
        return ((radius % period) < period / 2).astype(np.float32)
    if name == "speckle":
        h, w = y.shape
        cells = max(2, int(max(h, w) / period))
        return (noise(rng, h, w, cells, cells) > rng.uniform(0.5, 0.6)).astype(np.float32)
    if name == "zigzag":
        phase = np.abs((along / period) % 2 - 1) * period
        return (((across + phase) % period) < period / 2).astype(np.float32)
    raise ValueError(name)


def object_fill(rng, mask: np.ndarray, under: np.ndarray, name: str) -> np.ndarray:
    """(h, w, 3) appearance of an object of class ``name``: its class's pattern in two colours
    from its class's hue range (``SURFACE_FAMILIES``), contrasting with what lies under it."""
    family = SURFACE_FAMILIES[name]
    h, w = mask.shape
    mean_under = under[mask].mean(axis=0) if mask.any() else np.full(3, 0.5, np.float32)
    for _ in range(12):
        hue = rng.uniform(*family.hue)
        colour = _hsv(hue, rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0))
        if np.linalg.norm(colour - mean_under) > MIN_CONTRAST:
            break
    value = float(colorsys.rgb_to_hsv(*colour)[2])
    shift = rng.uniform(*family.contrast) * (1 if value < 0.6 else -1)
    other = _hsv(
        hue + rng.uniform(-0.04, 0.04), rng.uniform(0.3, 1.0), np.clip(value + shift, 0, 1)
    )
    y, x = pixel_grid(h, w)
    ys, xs = np.nonzero(mask)
    centre = (ys.mean(), xs.mean()) if len(ys) else (h / 2, w / 2)
    mix = _pattern(rng, family.pattern, y, x, rng.uniform(*family.period), centre)[..., None]
    fill = colour * (1 - mix) + other * mix
    fill = fill * (1 + rng.normal(0, 0.05, (h, w, 1))).astype(np.float32)
    if rng.random() < OUTLINE_PROBABILITY:  # a one-pixel outline, darker or lighter
        core = mask.copy()
        core[1:] &= mask[:-1]
        core[:-1] &= mask[1:]
        core[:, 1:] &= mask[:, :-1]
        core[:, :-1] &= mask[:, 1:]
        fill[mask & ~core] = rng.choice([0.05, 0.95])
    return fill.astype(np.float32)


def nuisance(rng, image: np.ndarray) -> np.ndarray:
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
