"""Reading weight files safely: safetensors, or ``torch.load(weights_only=True)``, never pickled code.

Every weight file the project reads (checkpoints, teacher and encoder initialisations) comes through
``read_weights``: a file that is missing, truncated, not a weight file, or a pickle that would run
code is a one-line ``ZeroSegError`` naming the file and what it was for.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from zeroseg.errors import ZeroSegError, first_line


def read_weights(path: str | Path, what: str, mmap: bool = False) -> Any:
    """The content of a ``.safetensors`` file (a dict of tensors) or of a ``torch.save`` file.

    Args:
        path: the file.
        what: what the file is for, for the error message (e.g. "teacher checkpoint").
        mmap: memory-map a ``torch.save`` file (tensors are read when touched).
    """
    path = Path(path)
    if not path.is_file():
        raise ZeroSegError(f"{what} {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # noqa: BLE001 - any reading failure, named in one line
        first, text = first_line(error), str(error)
        if "weights_only" in text or "Unsupported global" in text:
            first = "it holds pickled objects other than tensors (refused: loading could run code)"
        raise ZeroSegError(f"cannot read {what} {path}: {first[:300]}") from None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks; a path that is no file is a one-line error."""
    if not Path(path).is_file():
        raise ZeroSegError(f"cannot hash {path}: not a file")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | Path) -> dict:
    """``{"bytes", "sha256"}`` of a finished file, to check it later with ``verify_file``."""
    return {"bytes": Path(path).stat().st_size, "sha256": file_sha256(path)}


def verify_file(path: Path, record: dict, label: str, hash_up_to: int | None = None) -> None:
    """Refuse a file that changed since ``record`` was taken: its size always, its SHA-256 when it
    is at most ``hash_up_to`` bytes (always when None). ``label`` names what the file belongs to."""
    if not path.is_file():
        raise ZeroSegError(f"{label} is corrupt: {path.name} is missing")
    size = path.stat().st_size
    if size != record["bytes"]:
        raise ZeroSegError(
            f"{label} is corrupt: {path.name} is {size} bytes, {record['bytes']} when written"
        )
    if (hash_up_to is None or size <= hash_up_to) and file_sha256(path) != record["sha256"]:
        raise ZeroSegError(
            f"{label} is corrupt: {path.name} differs from the file written (SHA-256)"
        )
