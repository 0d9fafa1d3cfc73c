"""Release format: a trained student as a folder anyone can load (``zeroseg export``).

A release folder (or a Hugging Face Hub repository with the same files) holds::

    model.safetensors  the student's weights only (ViT encoder and segmentation head; no
                       reconstruction decoder, no optimiser state, no teacher), float32
    config.json        {format: "zeroseg-release", format_version, zeroseg_version,
                        experiment: the run's resolved config (student architecture included),
                        teacher: {model, pretrained, weights_sha256}, text_tower,
                        inference: default InferenceConfig, training: {step, data, source}}
    README.md          a model card: architecture, teacher, training data and steps, results

The teacher is not in the release: its text tower names the classes at test time and is rebuilt
from its open_clip name and tag, or from the file it came from (checked against the SHA-256 the
export recorded). ``Segmenter.from_pretrained`` reads a release; exporting a checkpoint and
loading the release gives bit-identical predictions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroseg.config import ExperimentConfig, TeacherConfig, saved_experiment_config, to_dict
from zeroseg.errors import ZeroSegError, first_line
from zeroseg.runtime.atomic import atomic_write_bytes, atomic_write_text
from zeroseg.runtime.weights_file import file_sha256, read_weights

if TYPE_CHECKING:
    from zeroseg.models.zeroseg import ZeroSeg

FORMAT = "zeroseg-release"
FORMAT_VERSION = 1
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass
class Release:
    """A loaded release: the student in eval mode and what it needs to segment."""

    model: ZeroSeg
    experiment: ExperimentConfig
    teacher: TeacherConfig
    inference: dict[str, Any]
    path: Path
    meta: dict[str, Any]


def is_release(path: str | Path) -> bool:
    """Whether ``path`` is a local release folder (``config.json`` of this format)."""
    config = Path(path) / CONFIG
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def looks_like_hub_id(name: str | Path) -> bool:
    """``user/name`` that is not a local path."""
    return isinstance(name, str) and not Path(name).exists() and bool(_HUB_ID.fullmatch(name))


def names_a_release(source: str | Path) -> bool:
    """Whether ``--checkpoint``-style ``source`` is a release (local folder or Hub id), not a run."""
    return is_release(source) or looks_like_hub_id(source)  # a Path is never a Hub id


def export_release(
    source: str | Path,
    out_dir: str | Path,
    inference: dict[str, Any] | None = None,
    results: dict[str, Any] | None = None,
) -> Path:
    """Write the release of a checkpoint (or a run's newest checkpoint) into ``out_dir``.

    Args:
        source: checkpoint file or run directory.
        out_dir: release folder (created; its three files are replaced atomically).
        inference: ``InferenceConfig`` fields to record as the release's defaults (plain values;
            ``inference.changed_fields`` gives those of a config that differ from the defaults).
        results: measured results for the model card, ``{name: {"miou": ..., ...}}``.

    Returns:
        the release folder.
    """
    from safetensors.torch import save

    from zeroseg.training.checkpoint import checkpoint_step, load_student

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ZeroSegError(f"--out {out} exists and is not a folder")
    model, experiment, checkpoint = load_student(source)
    step = checkpoint_step(checkpoint)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "zeroseg_version": _version(),
        "experiment": to_dict(experiment),
        "teacher": _teacher_identity(experiment.teacher),
        "text_tower": "teacher",  # the teacher's own open_clip text encoder names the classes
        "inference": dict(inference or {}),
        "training": {"step": step, "data": experiment.data.root, "source": str(checkpoint)},
        "results": results or {},
    }
    atomic_write_bytes(out / WEIGHTS, save(tensors, metadata={"format": FORMAT}))
    atomic_write_text(out / CONFIG, json.dumps(meta, indent=2) + "\n")
    atomic_write_text(out / CARD, model_card(meta))
    return out


def _version() -> str:
    from zeroseg.version import __version__

    return __version__


def _teacher_identity(teacher: TeacherConfig) -> dict[str, Any]:
    """The teacher's config plus, when its weights are a local file, that file's SHA-256."""
    identity = to_dict(teacher)
    path = Path(teacher.pretrained)
    identity["weights_sha256"] = file_sha256(path) if path.is_file() else None
    return identity


def model_card(meta: dict[str, Any]) -> str:
    """The release's README.md: what the model is, what it was trained on, how to use it."""
    exp = meta["experiment"]
    enc, head, teacher = exp["encoder"], exp["seg_head"], meta["teacher"]
    lines = [
        "# ZeroSeg student",
        "",
        "Open-vocabulary semantic segmentation distilled from a frozen CLIP vision encoder "
        "(ZeroSeg, Chen et al., ICCV 2023), exported by zeroseg "
        f"{meta['zeroseg_version']}.",
        "",
        f"- Student: ViT width {enc['width']}, depth {enc['depth']}, patch {enc['patch_size']}, "
        f"input {enc['image_size']}; grouping tokens {head['num_group_tokens']}; "
        f"embedding size {head['out_dim']}.",
        f"- Teacher (its text encoder names the classes): {teacher['model']} / "
        f"{teacher['pretrained']}"
        + (" (file, SHA-256 checked)" if teacher["weights_sha256"] else ""),
        f"- Trained on: {meta['training']['data'] or 'unknown'} for "
        f"{meta['training']['step']} optimiser steps (from {meta['training']['source']}).",
        "- Inference settings that differ from the defaults: "
        + (", ".join(f"{k}={v}" for k, v in meta["inference"].items()) or "none")
        + ".",
        "",
    ]
    if meta["results"]:
        lines += ["## Measured results", "", "| method | mIoU |", "|---|---|"]
        for name, values in meta["results"].items():
            lines.append(f"| {name} | {values['miou']:.2f} |")
        lines.append("")
    lines += [
        "## Use",
        "",
        "```bash",
        'zeroseg segment photos/ --checkpoint THIS_FOLDER --classes "cat, dog, grass" --out seg/',
        "zeroseg serve --checkpoint THIS_FOLDER",
        "```",
        "",
        "```python",
        "from zeroseg import Segmenter",
        'segmenter = Segmenter.from_pretrained("THIS_FOLDER")',
        'segmenter.set_vocabulary(["cat", "dog", ["grass", "lawn"]])',
        "```",
        "",
    ]
    return "\n".join(lines)


def read_results(path: str | Path) -> dict[str, Any]:
    """Results to quote in a model card, from ``zeroseg evaluate``'s results.json (one entry) or a
    demo's metrics.json (every entry with an mIoU), as ``{name: {"miou": ...}}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ZeroSegError(f"cannot read results {path}: {error}") from None
    if isinstance(data, dict) and "miou" in data:
        name = " ".join(str(data[k]) for k in ("dataset", "protocol") if k in data) or path.stem
        return {name: {"miou": float(data["miou"])}}
    found = {
        k: {"miou": float(v["miou"])}
        for k, v in (data.items() if isinstance(data, dict) else [])
        if isinstance(v, dict) and "miou" in v
    }
    if not found:
        raise ZeroSegError(f"results {path} has no mIoU entry")
    return found


def resolve_release(name: str | Path) -> Path:
    """A local release folder, or a Hub id (``user/name``) fetched through huggingface_hub."""
    path = Path(name)
    if path.exists():
        if not is_release(path):
            raise ZeroSegError(f"{path} is not a zeroseg release (no {CONFIG} of that format)")
        return path
    if not looks_like_hub_id(str(name)):
        raise ZeroSegError(f"model {name} does not exist (neither a folder nor a Hub id user/name)")
    return _download(str(name))


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    from zeroseg.models.teacher import hub_offline

    files = [CONFIG, WEIGHTS, CARD]
    offline = hub_offline()
    try:
        folder = snapshot_download(repo_id, allow_patterns=files, local_files_only=offline)
    except Exception as error:  # noqa: BLE001 - any Hub failure, named in one line
        if offline:
            raise ZeroSegError(
                f"model {repo_id} is not a local folder, not in the Hugging Face cache, and the Hub "
                "is offline (HF_HUB_OFFLINE)"
            ) from None
        raise ZeroSegError(
            f"cannot download model {repo_id} from the Hugging Face Hub: {first_line(error)}"
        ) from None
    if not is_release(folder):
        raise ZeroSegError(f"Hub repository {repo_id} is not a zeroseg release (no {CONFIG})")
    return Path(folder)


def read_release_config(path: Path) -> dict[str, Any]:
    """``config.json`` of a release folder, checked for format and version."""
    try:
        meta = json.loads((path / CONFIG).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ZeroSegError(f"cannot read {path / CONFIG}: {error}") from None
    if meta.get("format") != FORMAT:
        raise ZeroSegError(f"{path / CONFIG} is not a zeroseg release config")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ZeroSegError(f"release {path} has a newer format ({meta['format_version']})")
    return meta


def load_release(name: str | Path, teacher_pretrained: str | None = None) -> Release:
    """Load a release folder or Hub id: the student (eval mode) and its teacher's config.

    Args:
        name: release folder or Hub id.
        teacher_pretrained: where the teacher's weights are now, if not where the export found them
            (a file is checked against the recorded SHA-256).
    """
    from zeroseg.models.build import build_zeroseg

    path, meta, experiment, teacher = _read_release(name, teacher_pretrained)
    weights_file = path / WEIGHTS
    if not weights_file.is_file():
        raise ZeroSegError(f"release {path} has no {WEIGHTS}")
    weights = read_weights(weights_file, "release weights")
    model = build_zeroseg(experiment.encoder, experiment.seg_head, None)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        detail = [s.strip() for s in str(error).splitlines() if s.strip()][-1]
        raise ZeroSegError(
            f"{weights_file} does not match its config.json: {detail[:200]}"
        ) from None
    return Release(model.eval(), experiment, teacher, meta.get("inference", {}), path, meta)


def release_teacher(name: str | Path, teacher_pretrained: str | None = None) -> TeacherConfig:
    """The teacher config of a release (checked as ``load_release`` checks it), without building
    the student."""
    return _read_release(name, teacher_pretrained)[3]


def _read_release(name: str | Path, teacher_pretrained: str | None):
    """(folder, config.json, experiment config, checked teacher config) of a release."""
    path = resolve_release(name)
    meta = read_release_config(path)
    experiment = saved_experiment_config(meta["experiment"])
    return path, meta, experiment, _release_teacher(meta, experiment, teacher_pretrained)


def _release_teacher(
    meta: dict[str, Any], experiment: ExperimentConfig, pretrained: str | None
) -> TeacherConfig:
    teacher = experiment.teacher
    if pretrained:
        teacher = replace(teacher, pretrained=pretrained)
    expected = meta.get("teacher", {}).get("weights_sha256")
    path = Path(teacher.pretrained)
    if expected and path.is_file() and file_sha256(path) != expected:
        raise ZeroSegError(
            f"teacher weights {path} differ from the ones this model was trained with "
            f"(SHA-256 {expected[:12]}...); pass the right file as the teacher's weights"
        )
    if expected and not path.is_file():
        raise ZeroSegError(
            f"teacher weights {path} (recorded by the export) are not on this machine; pass their "
            "new location (Segmenter.from_pretrained(..., teacher_pretrained=FILE))"
        )
    return teacher
