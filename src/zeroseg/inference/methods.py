"""The segmenters a user can name with ``--method``: the ZeroSeg student, or a training-free dense
readout of its CLIP teacher (MaskCLIP, SCLIP, ClearCLIP, NACLIP). One function builds either, for the
command line and the Python API alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zeroseg.config import READOUTS, TeacherConfig, resolve_config
from zeroseg.errors import ZeroSegError
from zeroseg.inference.config import InferenceConfig

if TYPE_CHECKING:
    from zeroseg.inference.segmenter import WindowSegmenter

# "teacher-dense" is the older name of "maskclip".
METHODS = ("zeroseg", *READOUTS, "teacher-dense")


def method_name(method: str) -> str:
    """The current name of a ``--method`` (``teacher-dense`` is ``maskclip``)."""
    return "maskclip" if method == "teacher-dense" else method


@dataclass
class MethodModel:
    """A segmenter and what a results file records about it.

    Attributes:
        segmenter: a ``Segmenter`` or a ``DenseCLIPSegmenter`` (both ``set_vocabulary``/``predict``).
        checkpoint: the student's checkpoint file (None for a readout).
        teacher: the teacher's identity, e.g. "ViT-L-14/openai".
    """

    segmenter: WindowSegmenter
    checkpoint: Path | None
    teacher: str


def build_method(
    method: str,
    config: InferenceConfig,
    device=None,
    checkpoint: str | Path | None = None,
    teacher_model: str | None = None,
    teacher_pretrained: str | None = None,
) -> MethodModel:
    """The student's ``Segmenter`` (``method="zeroseg"``), or a readout of a teacher.

    A readout's teacher is the one a checkpoint, run or release was trained with when one is
    given, else ``teacher_model``/``teacher_pretrained`` over ``TeacherConfig``'s defaults.

    Raises:
        ZeroSegError: an unknown method, or ``zeroseg`` without a checkpoint.
    """
    from zeroseg.runtime.distributed import select_device

    if method not in METHODS:
        raise ZeroSegError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    device = select_device(device)  # a one-line error for a bogus or absent device
    if method == "zeroseg":
        from zeroseg.inference.segmenter import Segmenter

        if not checkpoint:
            raise ZeroSegError("--checkpoint is required with --method zeroseg")
        student = Segmenter.from_checkpoint(checkpoint, config, device=device)
        experiment = student.experiment_config
        assert experiment is not None  # from_checkpoint records it
        return MethodModel(student, student.checkpoint_path, _identity(experiment.teacher))
    from zeroseg.inference.readout_segmenter import DenseCLIPSegmenter
    from zeroseg.models.teacher import build_teacher

    if checkpoint:
        teacher_cfg = checkpoint_teacher(checkpoint)
    else:
        given = {"model": teacher_model, "pretrained": teacher_pretrained}
        overrides = [f"{key}={value}" for key, value in given.items() if value is not None]
        teacher_cfg = resolve_config(TeacherConfig, overrides=overrides)
    teacher = build_teacher(teacher_cfg).to(device)
    segmenter = DenseCLIPSegmenter(teacher, config, readout=method_name(method))
    return MethodModel(segmenter, None, _identity(teacher_cfg))


def checkpoint_teacher(source: str | Path) -> TeacherConfig:
    """The teacher config of a run directory, checkpoint or release."""
    from zeroseg.inference.release import names_a_release, release_teacher
    from zeroseg.training.checkpoint import load_experiment_config

    if names_a_release(source):
        return release_teacher(source)
    return load_experiment_config(source).teacher


def _identity(teacher: TeacherConfig) -> str:
    return f"{teacher.model}/{teacher.pretrained}"
