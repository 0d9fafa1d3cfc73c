"""Score segmenters side by side on a labelled validation set (the synthetic world's report).

Every method offers ``set_vocabulary`` / ``predict`` (the student's ``Segmenter`` and the teacher-only
baselines alike) and is scored with the same confusion matrix (mmseg's definitions). For the student,
the grouping diagnostics are added: segments used per image, segment purity, and the mIoU of the
oracle labelling (each segment takes its majority ground-truth class), the grouping's ceiling.
"""

from __future__ import annotations

from collections.abc import Sequence

from zeroseg.benchmark.diagnostics import GroupingStats, oracle_labels
from zeroseg.benchmark.metrics import ConfusionMatrix
from zeroseg.runtime.progress import progress as progress_bar


def _scores(summary: dict) -> dict:
    """mIoU, pixel accuracy and per-class IoU in percent (the unit of ``metrics``), 2 decimals."""
    return {
        "miou": round(summary["miou"], 2),
        "pixel_accuracy": round(summary["aacc"], 2),
        "per_class_iou": {k: round(v, 2) for k, v in summary["per_class"].items()},
    }


def evaluate_methods(
    methods: dict, dataset, class_names: Sequence[str], progress: bool = True
) -> tuple[dict, dict]:
    """Score each named method on every image of ``dataset``.

    Args:
        methods: name -> object with ``set_vocabulary`` and ``predict`` (vocabulary already set).
        dataset: yields (image (3, H, W) [0,1], label (H, W) int64, name).
        class_names: names aligned with the label indices.

    Returns:
        metrics: name -> {miou, pixel_accuracy, per_class_iou} in percent (+ grouping diagnostics for methods
        whose results carry segment ids, under ``<name>_oracle`` and inside their own entry);
        predictions: name -> list of (H, W) label maps for the first 8 images (for the report).
    """
    num_classes = len(class_names)
    matrices = {name: ConfusionMatrix(num_classes) for name in methods}
    oracle: dict[str, ConfusionMatrix] = {}
    grouping: dict[str, GroupingStats] = {}
    kept: dict[str, list] = {name: [] for name in methods}
    for index in progress_bar(range(len(dataset)), desc="evaluate", enabled=progress):
        image, label, _ = dataset[index]
        for name, method in methods.items():
            result = method.predict(image)
            matrices[name].update(result.labels.cpu(), label)
            if index < 8:
                kept[name].append(result)
            if result.segment_ids is not None:
                segments = result.segment_ids.cpu()
                oracle.setdefault(name, ConfusionMatrix(num_classes))
                oracle[name].update(oracle_labels(segments, label), label)
                grouping.setdefault(name, GroupingStats()).update(segments, label)
    metrics = {name: _scores(m.summary(list(class_names))) for name, m in matrices.items()}
    for name, matrix in oracle.items():
        metrics[name]["oracle_miou"] = _scores(matrix.summary(list(class_names)))["miou"]
        metrics[name].update(grouping[name].summary())
    return metrics, kept
