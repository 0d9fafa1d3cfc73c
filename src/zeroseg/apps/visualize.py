"""Palette label PNGs, overlays with a legend, and per-image JSON summaries for ``zeroseg segment``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from zeroseg.runtime.atomic import atomic_write_bytes, atomic_write_text


def palette(num_colors: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved), (num_colors, 3) uint8; index 0 is black."""
    colors = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        c, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors[index] = (r, g, b)
    return colors


def label_image(labels: Tensor | np.ndarray) -> Image.Image:
    """(H, W) class indices -> a PIL image holding the indices exactly.

    A palette ('P') image for indices below 256; a 16-bit greyscale image ('I;16') beyond, since a
    palette PNG cannot hold them (an index never wraps around).
    """
    array = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels).astype(np.int64)
    if array.size and array.max() > 255:
        if array.max() > 65535:
            raise ValueError(f"label index {array.max()} does not fit a 16-bit PNG")
        return Image.fromarray(array.astype(np.uint16))
    img = Image.fromarray(array.astype(np.uint8), mode="P")
    img.putpalette(palette().flatten().tolist())
    return img


def png_bytes(img: Image.Image) -> bytes:
    """Encode a PIL image as PNG bytes (for ``atomic_write_bytes``)."""
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def save_label_png(labels: Tensor | np.ndarray, path: Path) -> None:
    """Write class indices as a palette PNG, atomically."""
    atomic_write_bytes(path, png_bytes(label_image(labels)))


def overlay(
    image: Image.Image, labels: np.ndarray, class_names: list[str], alpha: float = 0.5
) -> Image.Image:
    """Blend the label colours over the image and draw a legend of the classes present.

    Colours are the VOC palette's; without a background class the first class takes colour 1,
    not background's black.
    """
    colors = palette(max(256, len(class_names) + 1))
    if not class_names or class_names[0] != "background":
        colors = colors[1:]
    blended = (1 - alpha) * np.asarray(image, dtype=np.float32) + alpha * colors[labels]
    out = Image.fromarray(blended.clip(0, 255).astype(np.uint8))
    present = [int(i) for i in np.unique(labels)]
    font = ImageFont.load_default()
    row = 14
    legend = Image.new("RGB", (out.width, row * len(present) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    for k, index in enumerate(present):
        y = 2 + k * row
        draw.rectangle(
            [4, y, 16, y + 10], fill=tuple(int(v) for v in colors[index]), outline=(0, 0, 0)
        )
        draw.text((22, y - 1), class_names[index], fill=(0, 0, 0), font=font)
    canvas = Image.new("RGB", (out.width, out.height + legend.height), (255, 255, 255))
    canvas.paste(out, (0, 0))
    canvas.paste(legend, (0, out.height))
    return canvas


def segment_regions(
    image: Image.Image, segment_ids: np.ndarray, segment_names: list[str], alpha: float = 0.6
) -> Image.Image:
    """The region of each segment token: one colour per segment, its class name at its centre.

    Args:
        image: the input (RGB, H x W).
        segment_ids: (H, W) segment index of each pixel.
        segment_names: the class each segment token was given, by segment index.
    """
    colors = palette(256)[np.arange(1, 257) * 7 % 255 + 1]
    ids = np.asarray(segment_ids, dtype=np.int64)
    blended = (1 - alpha) * np.asarray(image, dtype=np.float32) + alpha * colors[ids % 256]
    out = Image.fromarray(blended.clip(0, 255).astype(np.uint8))
    draw, font = ImageDraw.Draw(out), ImageFont.load_default()
    for index in np.unique(ids):
        rows, cols = np.nonzero(ids == index)
        label = f"{index}: {segment_names[index]}" if index < len(segment_names) else str(index)
        draw.text((int(cols.mean()), int(rows.mean())), label, fill=(255, 255, 255), font=font,
                  anchor="mm", stroke_width=1, stroke_fill=(0, 0, 0))  # fmt: skip
    return out


def write_outputs(
    image: Image.Image, labels: Tensor, class_names: list[str], out_dir: Path, stem: str
) -> dict:
    """Write ``stem.png`` (labels), ``stem_overlay.png`` and ``stem.json``; return the summary."""
    array = labels.cpu().numpy().astype(np.int64)
    save_label_png(array, out_dir / f"{stem}.png")
    atomic_write_bytes(
        out_dir / f"{stem}_overlay.png", png_bytes(overlay(image, array, class_names))
    )
    total = array.size
    found = {
        class_names[int(i)]: {
            "index": int(i),
            "pixels": int(n),
            "fraction": round(int(n) / total, 6),
        }
        for i, n in zip(*np.unique(array, return_counts=True))
    }
    summary = {"height": int(array.shape[0]), "width": int(array.shape[1]), "classes": found}
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(summary, indent=2) + "\n")
    return summary
