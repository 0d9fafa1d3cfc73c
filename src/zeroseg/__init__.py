"""zeroseg: open-vocabulary semantic segmentation by distilling a frozen CLIP vision encoder.

Public API::

    from zeroseg import load_config, train, Segmenter, InferenceConfig
    segmenter = Segmenter.from_checkpoint("runs/tiny")
    segmenter.set_vocabulary(["cat", "dog", "grass"])
    result = segmenter.predict(image)  # (3, H, W) float in [0, 1] -> result.labels (H, W)

The names that need torch (``Segmenter``, ``SegmentationResult``) load on first use, so that
importing the package (and ``zeroseg --help``) stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zeroseg.config import ExperimentConfig, load_config
from zeroseg.errors import ZeroSegError
from zeroseg.inference.config import InferenceConfig
from zeroseg.version import __version__

if TYPE_CHECKING:
    from zeroseg.inference.segmenter import SegmentationResult, Segmenter


def train(config: ExperimentConfig, run_dir, resume: bool = False, progress: bool = True):
    """Train a student (see ``zeroseg.training.loop.train``)."""
    from zeroseg.training.loop import train as _train

    return _train(config, run_dir, resume=resume, progress=progress)


def __getattr__(name: str) -> Any:
    if name in ("Segmenter", "SegmentationResult"):
        from zeroseg.inference import segmenter

        return getattr(segmenter, name)
    raise AttributeError(f"module 'zeroseg' has no attribute {name!r}")


__all__ = [
    "ExperimentConfig",
    "InferenceConfig",
    "SegmentationResult",
    "Segmenter",
    "ZeroSegError",
    "__version__",
    "load_config",
    "train",
]
