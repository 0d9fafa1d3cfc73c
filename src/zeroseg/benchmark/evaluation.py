"""Benchmark evaluation: segment every image, score at the label's resolution, write the results.

``evaluate`` works with anything that has the ``Segmenter`` API (``set_vocabulary``, ``predict``):
the distilled student and the teacher-only baselines alike. Scores follow mmseg's definitions
(``zeroseg.benchmark.metrics``). Under ``torch.distributed`` each rank takes ``indices[rank::world]`` (no
padded duplicates) and the confusion matrices are summed, so any number of processes gives the
single-process numbers exactly.

A long evaluation is resumable: every ``PART_SIZE`` images each rank writes the confusion matrix
of those images as ``out_dir/parts/rankR-partNNNNN.json`` (atomic, with its SHA-256), after
``parts/job.json`` records what is evaluated (settings, dataset size, classes, ranks). A rerun with
the same settings adds the intact parts and evaluates only the rest, so a killed run loses at most
the images of one part in flight and gives the numbers of one uninterrupted pass (the matrix is a
sum of integers). A rerun with other settings is refused in one line naming the first setting that
differs. The parts are removed once ``results.json`` is written.

Outputs in ``out_dir``: ``results.json`` (mIoU, aAcc, mAcc, per-class IoU and accuracy, all in percent,
NaN written as null, plus the caller's settings) and ``results.md`` (the same as Markdown tables);
optionally one palette PNG of predicted class indices per image, named by the image's stem.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

from zeroseg.benchmark.metrics import ConfusionMatrix
from zeroseg.errors import ZeroSegError
from zeroseg.runtime.atomic import atomic_write_text
from zeroseg.runtime.distributed import rank_and_world
from zeroseg.runtime.progress import progress as progress_bar
from zeroseg.runtime.weights_file import file_sha256

logger = logging.getLogger(__name__)


def evaluate(
    segmenter,
    dataset,
    *,
    out_dir: str | Path,
    save_predictions: bool | str | Path | None = None,
    progress: bool = True,
    vocabulary=None,
    settings: Mapping[str, Any] | None = None,
) -> dict:
    """Score a segmenter on a labelled dataset and write ``results.json`` and ``results.md``.

    Args:
        segmenter: has ``predict(image (3, H, W)) -> SegmentationResult`` whose ``labels`` (H, W)
            index the dataset's classes (set its vocabulary first, or pass ``vocabulary``).
        dataset: yields ``(image (3, H, W) [0,1], label (H, W) int64, name)`` and has
            ``class_names`` and ``ignore_index``.
        out_dir: folder for the results (created).
        save_predictions: True for ``out_dir/predictions``, or a folder; None/False to skip.
        progress: show a progress bar (rank 0 only).
        vocabulary: a ``zeroseg.benchmark.vocabularies.Vocabulary`` to set on the segmenter first.
        settings: what produced the numbers (preset, templates, class names, teacher, checkpoint
            hash, ...), recorded verbatim under ``settings``.

    Returns:
        The content of ``results.json`` (the same on every rank, but for ``seconds``).
    """
    out_dir = Path(out_dir)
    class_names = list(dataset.class_names)
    if vocabulary is not None:
        if len(vocabulary.class_names) != len(class_names):
            raise ZeroSegError(
                f"vocabulary has {len(vocabulary.class_names)} classes, dataset {len(class_names)}"
            )
        vocabulary.apply_to(segmenter)
        logger.info("classes: %s", " | ".join("; ".join(n) for n in vocabulary.class_names))
        if vocabulary.background_words:
            logger.info("background words: %s", "; ".join(vocabulary.background_words))
    pred_dir = _prediction_dir(out_dir, save_predictions)
    rank, world = rank_and_world()
    ignore = getattr(dataset, "ignore_index", 255)
    device = getattr(segmenter, "device", None)
    matrix = ConfusionMatrix(len(class_names), ignore, device)
    indices = list(range(len(dataset)))[rank::world]
    job = {
        "format": PARTS_FORMAT, "num_images": len(dataset), "class_names": class_names,
        "ignore_index": ignore, "world_size": world, "part_size": PART_SIZE,
        "settings": _nan_to_none(_plain(dict(settings or {}))),
    }  # fmt: skip
    parts = PartStore(out_dir / "parts", job, rank)
    start = time.perf_counter()
    bar = progress_bar(total=len(indices), desc="evaluate", enabled=progress and rank == 0)
    for first in range(0, len(indices), PART_SIZE):
        done = parts.load(first // PART_SIZE, len(class_names))
        part = ConfusionMatrix(len(class_names), ignore, device)
        chunk = indices[first : first + PART_SIZE]
        if done is not None:
            part.matrix = done.to(part.matrix.device)
            bar.update(len(chunk))
        else:
            for index in chunk:
                image, label, name = dataset[index]
                labels = _predict_labels(segmenter, image, label, len(class_names), name)
                part.update(labels, label)
                if pred_dir is not None:
                    from zeroseg.apps.visualize import save_label_png

                    save_label_png(labels, pred_dir / f"{name}.png")
                bar.update(1)
            parts.save(first // PART_SIZE, part.matrix)
        matrix.matrix = matrix.matrix.to(part.matrix.device) + part.matrix
    bar.close()
    if parts.reused:
        logger.info("resumed: %d of %d images from earlier parts", parts.reused, len(indices))
    matrix.all_reduce()
    results = _results(matrix, class_names, len(dataset), settings)
    results["seconds"] = round(time.perf_counter() - start, 2)
    if rank == 0:
        write_results(results, out_dir)
        shutil.rmtree(parts.folder, ignore_errors=True)
        logger.info(
            "mIoU %.2f  aAcc %.2f  mAcc %.2f", results["miou"], results["aacc"], results["macc"]
        )
    return results


PART_SIZE = 25  # images per part file: what a killed evaluation can lose
PARTS_FORMAT = "zeroseg-eval-parts-1"


class PartStore:
    """This rank's confusion-matrix parts of one evaluation job (see the module's docstring)."""

    def __init__(self, folder: Path, job: dict, rank: int) -> None:
        self.folder, self.job, self.rank, self.reused = folder, job, rank, 0
        path = folder / "job.json"
        if path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                saved = None
            if not isinstance(saved, dict) or saved.get("format") != PARTS_FORMAT:
                raise ZeroSegError(
                    f"{folder} is not a partial evaluation of this version; delete it to start over"
                )
            differs = _first_difference(saved, job)
            if differs is not None:
                raise ZeroSegError(
                    f"{folder.parent} holds a partial evaluation with other settings ({differs} "
                    f"differs); rerun with the same settings to finish it, or delete {folder} "
                    "(or choose another --out) to start over"
                )
        elif rank == 0:
            atomic_write_text(path, json.dumps(job, indent=1))

    def _path(self, index: int) -> Path:
        return self.folder / f"rank{self.rank}-part{index:05d}.json"

    def load(self, index: int, num_classes: int) -> torch.Tensor | None:
        """Part ``index``'s matrix when it was written and is intact, else None."""
        path = self._path(index)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            values = record["matrix"]
            ok = record["sha256"] == _matrix_hash(values) and len(values) == num_classes
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            logger.warning("evaluating the images of %s again: it is damaged", path.name)
            return None
        matrix = torch.tensor(values, dtype=torch.int64)
        self.reused += int(record["images"])
        return matrix

    def save(self, index: int, matrix: torch.Tensor) -> None:
        values = matrix.cpu().tolist()
        images = min(PART_SIZE, self._count(index))
        record = {"images": images, "matrix": values, "sha256": _matrix_hash(values)}
        atomic_write_text(self._path(index), json.dumps(record))

    def _count(self, index: int) -> int:
        mine = len(range(self.rank, self.job["num_images"], self.job["world_size"]))
        return mine - index * PART_SIZE


def _matrix_hash(values: list) -> str:
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()


def _first_difference(saved: dict, job: dict, prefix: str = "") -> str | None:
    """The first key (dotted) whose value differs between two job records, or None."""
    for key in sorted(set(saved) | set(job)):
        a, b = saved.get(key), job.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _first_difference(a, b, f"{prefix}{key}.")
            if inner is not None:
                return inner
        elif a != b:
            return f"{prefix}{key}"
    return None


def _predict_labels(segmenter, image, label, num_classes: int, name: str) -> torch.Tensor:
    result = segmenter.predict(image)
    labels = result.labels
    if len(result.class_names) != num_classes:
        raise ZeroSegError(
            f"the segmenter outputs {len(result.class_names)} classes but the dataset has "
            f"{num_classes}: set a matching vocabulary (with background if the dataset has it)"
        )
    if labels.shape != label.shape:
        raise ZeroSegError(
            f"prediction for {name} is {tuple(labels.shape)}, label is {tuple(label.shape)}"
        )
    return labels


def _prediction_dir(out_dir: Path, save: bool | str | Path | None) -> Path | None:
    if save is None or save is False:
        return None
    folder = out_dir / "predictions" if save is True else Path(save)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _results(matrix: ConfusionMatrix, class_names: list[str], num_images: int, settings) -> dict:
    summary = matrix.summary(class_names)
    return {
        "miou": summary["miou"],
        "aacc": summary["aacc"],
        "macc": summary["macc"],
        "per_class": summary["per_class"],
        "per_class_acc": summary["per_class_acc"],
        "num_images": num_images,
        "num_pixels": summary["num_pixels"],
        "settings": _plain(dict(settings or {})),
    }


def write_results(results: dict, out_dir: str | Path) -> None:
    """Write ``results.json`` (NaN as null) and ``results.md`` atomically."""
    out_dir = Path(out_dir)
    text = json.dumps(_nan_to_none(results), indent=2, allow_nan=False)
    atomic_write_text(out_dir / "results.json", text + "\n")
    atomic_write_text(out_dir / "results.md", results_markdown(results))


def results_markdown(results: dict) -> str:
    """A summary line, the settings and the per-class table as Markdown."""
    lines = [
        "# Evaluation results",
        "",
        "| mIoU | aAcc | mAcc | images |",
        "|---:|---:|---:|---:|",
        f"| {_pct(results['miou'])} | {_pct(results['aacc'])} | {_pct(results['macc'])} "
        f"| {results['num_images']} |",
        "",
    ]
    if results.get("settings"):
        lines += ["## Settings", "", "| setting | value |", "|---|---|"]
        for key, value in results["settings"].items():
            if isinstance(value, list) and len(value) > 8:
                shown = f"{len(value)} entries (see results.json)"
            else:
                shown = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"| {key} | {shown.replace('|', '/')} |")
        lines.append("")
    lines += ["## Per class", "", "| class | IoU | Acc |", "|---|---:|---:|"]
    for name, iou in results["per_class"].items():
        lines.append(f"| {name} | {_pct(iou)} | {_pct(results['per_class_acc'][name])} |")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def _plain(value):
    """Settings -> JSON-friendly containers (dataclasses become dicts, paths strings)."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def benchmark_settings(
    protocol: str,
    dataset: str,
    config,
    vocabulary,
    checkpoint: str | Path | None = None,
    teacher: str | None = None,
    **extra: Any,
) -> dict:
    """The settings block for ``evaluate(..., settings=...)`` of a benchmark run.

    Args:
        protocol: protocol name (``zeroseg.benchmark.protocols``).
        dataset: benchmark name.
        config: the ``InferenceConfig`` used.
        vocabulary: the ``Vocabulary`` used.
        checkpoint: checkpoint file, hashed with SHA-256 (None for teacher-only baselines).
        teacher: the teacher's identity, e.g. "ViT-L-14/openai".
        extra: anything else to record.
    """
    settings = {
        "protocol": protocol,
        "dataset": dataset,
        "inference": _plain(config),
        "templates": getattr(config, "templates", None),
        "vocabulary": f"{vocabulary.flavour} ({vocabulary.source})",
        "class_names": [list(names) for names in vocabulary.class_names],
        "background_words": list(vocabulary.background_words),
        "teacher": teacher,
        "torch": torch.__version__,
    }
    if checkpoint is not None:
        settings["checkpoint"] = str(checkpoint)
        settings["checkpoint_sha256"] = file_sha256(checkpoint)
    settings.update(extra)
    return settings
