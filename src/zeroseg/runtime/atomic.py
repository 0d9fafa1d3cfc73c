"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Every writer goes through a temporary file in the destination folder, flushed and ``fsync``-ed,
then ``os.replace``-d over the target; on any failure the temporary file is removed and the
previous file, if any, is left as it was. A write the system refuses (a full disk: ``ENOSPC``, a
quota, a read-only folder) is a one-line ``ZeroSegError`` naming the path. New files get
the permissions the process's umask allows (``0o666 & ~umask``), as ``open`` would give them, not
``mkstemp``'s private 0600.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zeroseg.errors import ZeroSegError, first_line


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(temporary_path)``, then move the result over ``path`` atomically."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise write_error(path, error) from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) or _torch_write_failure(error):
            raise write_error(path, error) from None
        raise
    return path


def write_error(path: Path, error: BaseException) -> ZeroSegError:
    """The one-line error for a file that could not be written (the old one, if any, is intact)."""
    reason = getattr(error, "strerror", None) or first_line(error)
    kept = " (the previous file is unchanged)" if path.exists() else ""
    return ZeroSegError(f"cannot write {path}: {reason}{kept}")


def _torch_write_failure(error: BaseException) -> bool:
    """torch.save reports a failed write (a full disk) as a RuntimeError of its stream writer."""
    text = str(error)
    return isinstance(error, RuntimeError) and ("file write failed" in text or
                                                "PytorchStreamWriter failed" in text)  # fmt: skip


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch  # here, so that writing text does not load torch (``zeroseg --help``)

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
