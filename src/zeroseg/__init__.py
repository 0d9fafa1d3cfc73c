"""zeroseg: open-vocabulary semantic segmentation by distilling a frozen CLIP vision encoder.

Public API::

    from zeroseg import load_config, train, Segmenter, InferenceConfig
    segmenter = Segmenter.from_checkpoint("runs/tiny")
    segmenter.set_vocabulary(["cat", "dog", "grass"])
    result = segmenter.predict(image)  # (3, H, W) float in [0, 1] -> result.labels (H, W)
"""

from zeroseg.config import ExperimentConfig, load_config
from zeroseg.errors import ZeroSegError
from zeroseg.inference.segmenter import InferenceConfig, SegmentationResult, Segmenter
from zeroseg.version import __version__


def train(config: ExperimentConfig, run_dir, resume: bool = False, progress: bool = True):
    """Train a student (see ``zeroseg.training.loop.train``)."""
    from zeroseg.training.loop import train as _train

    return _train(config, run_dir, resume=resume, progress=progress)


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
