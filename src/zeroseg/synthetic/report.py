"""The demo's report: a Markdown page with the metrics table and a picture per validation scene.

Each row of a picture: input scene, ground truth, the student's segmentation, the best teacher-only
baseline's segmentation, and the student's segment-token map (one colour per segment token).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from zeroseg.apps.visualize import palette, png_bytes
from zeroseg.runtime.atomic import atomic_write_bytes, atomic_write_text

PANEL_SCALE = 3
COLUMNS = ("scene", "ground truth", "zeroseg", "best baseline", "segment tokens")


def _panel(array: np.ndarray) -> Image.Image:
    img = Image.fromarray(array)
    return img.resize((img.width * PANEL_SCALE, img.height * PANEL_SCALE), Image.Resampling.NEAREST)


def scene_strip(image, label, student, baseline) -> Image.Image:
    """One row of five panels for a validation scene."""
    colors = palette()
    segment_colors = colors[np.arange(1, 65) * 7 % 255 + 1]
    pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    panels = [
        pixels,
        colors[np.asarray(label).clip(0, 255)],
        colors[student.labels.cpu().numpy()],
        colors[baseline.labels.cpu().numpy()],
        segment_colors[student.segment_ids.cpu().numpy() % 64],
    ]
    tiles = [_panel(p) for p in panels]
    width, height = tiles[0].width, tiles[0].height
    strip = Image.new("RGB", (width * len(tiles) + 4 * (len(tiles) - 1), height), (255, 255, 255))
    for k, tile in enumerate(tiles):
        strip.paste(tile, (k * (width + 4), 0))
    return strip


def legend(class_names: list[str]) -> Image.Image:
    colors = palette()
    img = Image.new("RGB", (140, 14 * len(class_names) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for k, name in enumerate(class_names):
        draw.rectangle([4, 2 + 14 * k, 16, 12 + 14 * k], fill=tuple(int(c) for c in colors[k]))
        draw.text((22, 1 + 14 * k), name, fill=(0, 0, 0))
    return img


def _per_class_table(metrics: dict, class_names: list[str]) -> list[str]:
    """Per-class IoU (percent) of every method, one row per method."""
    methods = {k: v for k, v in metrics.items() if "per_class_iou" in v}
    lines = ["Per-class IoU:", "", "| method | " + " | ".join(class_names) + " |"]
    lines.append("|---" * (len(class_names) + 1) + "|")
    for name, m in methods.items():
        values = [m["per_class_iou"].get(c) for c in class_names]
        cells = ["n/a" if v is None or v != v else f"{v:.1f}" for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_report(out_dir: Path, dataset, metrics: dict, predictions: dict, best: str) -> Path:
    """Write ``report.md`` plus ``report/*.png`` into ``out_dir``; returns the page's path."""
    pictures = out_dir / "report"
    lines = ["# zeroseg synthetic-world demo", ""]
    summary = metrics["summary"]
    lines += [
        f"Student mIoU / best teacher-only baseline ({best}): "
        f"**{summary['ratio_to_best_baseline']}x**, in {summary['seconds']} s.",
        "",
        "| method | mIoU | pixel accuracy | oracle mIoU | segments / image | purity |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        if "miou" not in m:
            continue
        extra = [
            m.get("oracle_miou", ""),
            m.get("segments_used_per_image", ""),
            m.get("segment_purity", ""),
        ]
        lines.append(
            f"| {name} | {m['miou']:.2f} | {m['pixel_accuracy']:.2f} | "
            + " | ".join(map(str, extra))
            + " |"
        )
    lines += ["", *_per_class_table(metrics, list(dataset.class_names)), ""]
    zero_shot = metrics.get("teacher_zero_shot", {})
    lines += [f"Teacher zero-shot accuracy on single-object scenes: {zero_shot}", ""]
    views = metrics.get("teacher_view_accuracy") or {}
    if views:
        lines += ["Teacher zero-shot labels of grid cells of held-out scenes (majority class):", ""]
        lines += ["| grid | object cells right | stuff cells right |", "|---|---|---|"]
        lines += [f"| {g} | {v['objects']} | {v['stuff']} |" for g, v in views.items()]
        lines.append("")
    atomic_write_bytes(pictures / "legend.png", png_bytes(legend(list(dataset.class_names))))
    lines += ["Columns: " + ", ".join(COLUMNS) + ".", "", "![legend](report/legend.png)", ""]
    for index, (student, baseline) in enumerate(zip(predictions["zeroseg"], predictions[best])):
        image, label, name = dataset[index]
        strip = scene_strip(image, label, student, baseline)
        atomic_write_bytes(pictures / f"scene_{index}.png", png_bytes(strip))
        lines.append(f"![{name}](report/scene_{index}.png)")
    page = out_dir / "report.md"
    atomic_write_text(page, "\n".join(lines) + "\n")
    return page
