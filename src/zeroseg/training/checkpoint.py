"""Checkpoints: atomic writes, resumable training state, and loading a student for inference.

A run directory holds ``config.yaml`` and ``checkpoints/step_XXXXXXX.pt``. Each checkpoint is a dict
of plain containers that loads with ``torch.load(weights_only=True)``::

    {format_version, step, config (plain dict), model (student state_dict), optimizer, rng}

The teacher is never stored; its identity is in ``config['teacher']``. The student is always saved
unwrapped (no ``module.`` prefix); loading tolerates the prefix anyway.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from zeroseg.config import ExperimentConfig, saved_experiment_config
from zeroseg.errors import ZeroSegError
from zeroseg.runtime.atomic import atomic_torch_save, atomic_write_text
from zeroseg.runtime.weights_file import file_record, read_weights, verify_file

FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"step_(\d+)\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}.pt"


def checkpoint_step(path: Path) -> int | None:
    """The step in a checkpoint's file name (``step_0000040.pt`` -> 40), None for other names."""
    match = _STEP_FILE.search(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(step, p) for p in folder.iterdir() if (step := checkpoint_step(p)) is not None]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def checksum_path(path: Path) -> Path:
    """The checksum file written beside a checkpoint: ``step_XXXXXXX.pt.sha256``."""
    return path.with_name(path.name + ".sha256")


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep: int = 0) -> Path:
    """Write ``state`` as the checkpoint of ``state['step']``, then its SHA-256 and size beside it;
    prune to the newest ``keep`` (0 = all). Both files are written atomically, checkpoint first."""
    path = checkpoint_path(run_dir, state["step"])
    atomic_torch_save({"format_version": FORMAT_VERSION, **state}, path)
    record = file_record(path)
    atomic_write_text(checksum_path(path), f"{record['sha256']}  {record['bytes']}\n")
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
            checksum_path(old).unlink(missing_ok=True)
    return path


def remove_partial_writes(run_dir: Path) -> list[Path]:
    """Delete temporary files a killed checkpoint write left in ``run_dir/checkpoints``."""
    folder = Path(run_dir) / "checkpoints"
    stale = sorted(folder.glob(".step_*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def verify_checkpoint(path: Path) -> None:
    """Compare a checkpoint with the SHA-256 and size recorded when it was written (if any)."""
    record = checksum_path(path)
    if not record.is_file():
        return
    sha256, size = record.read_text().split()[:2]
    verify_file(path, {"sha256": sha256, "bytes": int(size)}, f"checkpoint {path}")


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the newest checkpoint of a run directory."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise ZeroSegError(f"run directory {path} has no checkpoints/step_*.pt")
        return found
    if not path.is_file():
        raise ZeroSegError(f"checkpoint {path} does not exist")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict (weights_only) after checking it is one of ours."""
    path = resolve_checkpoint(path)
    verify_checkpoint(path)
    # mmap: tensors are read when touched, so loading a student never reads optimiser state
    state = read_weights(path, "checkpoint", mmap=True)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ZeroSegError(f"{path} is not a zeroseg checkpoint (no model/config entries)")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise ZeroSegError(f"checkpoint {path} has a newer format ({state['format_version']})")
    state["path"] = str(path)
    return state


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP/compile prefixes (``module.``, ``_orig_mod.``)."""
    return {k.replace("_orig_mod.", "").removeprefix("module."): v for k, v in state.items()}


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    """The resolved experiment config saved in a checkpoint (or a run's newest checkpoint)."""
    return saved_experiment_config(load_checkpoint(path)["config"])


def load_student(path: str | Path, with_decoder: bool = False):
    """Rebuild the student from a checkpoint or run directory.

    Returns:
        (ZeroSeg in eval mode, ExperimentConfig, checkpoint path).
    """
    from zeroseg.models.build import build_zeroseg

    state = load_checkpoint(path)
    config: ExperimentConfig = saved_experiment_config(state["config"])
    model = build_zeroseg(config.encoder, config.seg_head, config.decoder if with_decoder else None)
    weights = clean_state_dict(state["model"])
    if not with_decoder:
        weights = {k: v for k, v in weights.items() if not k.startswith("decoder.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise ZeroSegError(
            f"checkpoint {state['path']} does not match its architecture config: {detail[:200]}"
        ) from None
    return model.eval(), config, Path(state["path"])
