"""Segmenting many images: files, folders (recursive) and globs, bad files reported and skipped.

``segment_files`` writes, for each input, ``KEY.png`` (palette label PNG at the input's size),
``KEY_overlay.png`` (with a legend) and ``KEY.json`` (classes found and their areas), where KEY is
the file's path below the folder it was found in (or its stem for a file or glob), and at the end
``summary.json`` (every image's classes and areas, skipped files with the reason, images/s) and,
optionally, ``coco.json`` (one COCO RLE annotation per class per image). Each file is written
atomically; ``summary.json`` is written last, so its presence means the run finished.
"""

from __future__ import annotations

import glob
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zeroseg.apps.coco_masks import COCODocument
from zeroseg.apps.visualize import write_outputs
from zeroseg.data.images import IMAGE_SUFFIXES, open_rgb, to_tensor
from zeroseg.errors import ZeroSegError
from zeroseg.runtime.atomic import atomic_write_text
from zeroseg.runtime.progress import progress as progress_display

logger = logging.getLogger(__name__)
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputImage:
    """One file to segment and the output key (relative path without suffix) it is written under."""

    path: Path
    key: str


@dataclass(frozen=True)
class Skipped:
    """A named input that could not be segmented, and why."""

    path: str
    reason: str


def collect_inputs(items: Sequence[str | Path]) -> tuple[list[InputImage], list[Skipped]]:
    """Expand files, folders (recursively, image suffixes only) and glob patterns.

    Returns:
        the images in the order given (each folder's files sorted), with unique output keys, and
        the named paths that do not exist or match nothing.
    """
    found: list[tuple[Path, str]] = []
    missing: list[Skipped] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if _is_image_file(p))
            found += [(p, p.relative_to(path).with_suffix("").as_posix()) for p in files]
        elif path.is_file():
            found.append((path, path.stem))
        elif GLOB_CHARS & set(str(item)):
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            files = [m for m in matches if _is_image_file(m)]
            found += [(m, m.stem) for m in files]
            if not files:
                missing.append(Skipped(str(item), "the pattern matches no image file"))
        else:
            missing.append(Skipped(str(item), "no such file or folder"))
    return [
        InputImage(p, k) for p, k in zip((p for p, _ in found), _unique(k for _, k in found))
    ], missing


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _unique(keys) -> list[str]:
    out: list[str] = []
    seen: dict[str, int] = {}
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
        out.append(key if seen[key] == 1 else f"{key}_{seen[key]}")
    return out


def collect_or_fail(items: Sequence[str | Path]) -> tuple[list[InputImage], list[Skipped]]:
    """``collect_inputs``, with the named paths that match nothing logged, and a one-line error
    when no image at all is named (checked before a model is loaded)."""
    inputs, skipped = collect_inputs(items)
    for bad in skipped:
        logger.warning("skipped %s: %s", bad.path, bad.reason)
    if not inputs:
        raise ZeroSegError(f"no images to segment in {', '.join(map(str, items))}")
    return inputs, skipped


def segment_files(
    segmenter,
    items: Sequence[str | Path],
    out_dir: str | Path,
    coco: bool = False,
    progress: bool = True,
) -> dict:
    """Segment every image named by ``items`` with ``segmenter``'s vocabulary; see the module doc.

    Returns:
        the summary (also written as ``out_dir/summary.json``).

    Raises:
        ZeroSegError: when ``items`` name no image at all.
    """
    inputs, skipped = collect_or_fail(items)
    return segment_inputs(segmenter, inputs, skipped, out_dir, coco, progress)


def segment_inputs(
    segmenter,
    inputs: list[InputImage],
    skipped: list[Skipped],
    out_dir: str | Path,
    coco: bool = False,
    progress: bool = True,
) -> dict:
    """``segment_files`` for inputs already collected (``collect_or_fail``)."""
    skipped = list(skipped)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ZeroSegError(f"--out {out} exists and is not a folder")
    document = COCODocument(segmenter.vocabulary.names) if coco else None
    records, started = [], time.perf_counter()
    many = len(inputs) + len(skipped) > 1  # one file: its error is the message, no bar
    bar = progress_display(inputs, desc="segment", enabled=progress and many)
    for item in bar:
        record = _segment_one(segmenter, item, out, document)
        if isinstance(record, Skipped):
            skipped.append(record)
            if many:
                logger.warning("skipped %s: %s", record.path, record.reason)
        else:
            records.append(record)
        bar.set_postfix(skipped=len(skipped))
    seconds = time.perf_counter() - started
    if not records:
        reasons = [s.reason for s in skipped]
        raise ZeroSegError(reasons[0] if len(reasons) == 1 else f"none of {len(reasons)} inputs "
                           f"could be segmented (first: {reasons[0]})")  # fmt: skip
    summary = {
        "classes": list(segmenter.vocabulary.names),
        "images": records,
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
        "seconds": round(seconds, 3),
        "images_per_second": round(len(records) / seconds, 3) if seconds > 0 else None,
    }
    if document is not None:
        atomic_write_text(out / "coco.json", json.dumps(document.to_dict()) + "\n")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _segment_one(segmenter, item: InputImage, out: Path, document) -> dict | Skipped:
    """Segment one file and write its outputs; an unreadable file becomes a ``Skipped``."""
    try:
        image = open_rgb(item.path)
    except ZeroSegError as error:
        return Skipped(str(item.path), str(error))
    result = segmenter.predict(to_tensor(image))
    summary = write_outputs(image, result.labels, result.class_names, out, item.key)
    if document is not None:
        document.add(f"{item.key}{item.path.suffix}", result.labels.cpu().numpy().astype(np.int64))
    return {"path": str(item.path), "output": f"{item.key}.png", **summary}


def summary_lines(summary: dict, out_dir: str | Path, shown: int = 20) -> list[str]:
    """What ``zeroseg segment`` prints: the classes found in the first ``shown`` images, then the
    counts and where ``summary.json`` is."""
    lines = []
    for record in summary["images"][:shown]:
        found = ", ".join(f"{k} {v['fraction']:.0%}" for k, v in record["classes"].items())
        lines.append(f"{record['path']}: {found}")
    done, skipped = len(summary["images"]), len(summary["skipped"])
    lines.append(
        f"{done} images segmented ({summary['images_per_second']} images/s), {skipped} skipped"
        f" -> {Path(out_dir) / 'summary.json'}"
    )
    return lines
