"""Writing a dataset as numbered shards across ranks and nodes, resumably.

Shard ``i`` of a job is written by global rank ``i % world_size`` (torchrun: every rank of every
node takes a disjoint slice). Each shard's files are written atomically, then a record
``NAME.done.json`` naming them with their sizes and SHA-256, so a shard is finished exactly when its
record exists and its files still match it. A restarted job (after a kill, a node failure or a
pre-emption) checks the records and writes only the shards that are not finished.

The job's identity (what the shards are made from and how) is written to ``job.json`` before the
first shard; a restart with a different identity is refused instead of mixing shards of two
different jobs. When every rank is done, the main rank gathers the records for the manifest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from zeroseg.errors import ZeroSegError, first_line
from zeroseg.runtime.atomic import atomic_write_text
from zeroseg.runtime.distributed import DistInfo, barrier
from zeroseg.runtime.progress import progress as progress_bar
from zeroseg.runtime.weights_file import file_record, verify_file

logger = logging.getLogger(__name__)

# ``write(i)`` writes shard i's files and returns (their paths, the number of samples in them,
# extra fields for the record such as the files it skipped).
ShardWriter = Callable[[int], tuple[list[Path], int, dict]]


def read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path``, or a one-line error naming ``what`` it is and the problem."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ZeroSegError(f"cannot read {what} {path}: {first_line(error)}") from None
    if not isinstance(value, dict):
        raise ZeroSegError(f"{what} {path} is not a JSON object")
    return value


def record_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"{name}.done.json"


def finished_record(out_dir: Path, name: str) -> dict | None:
    """Shard ``name``'s record when the shard is finished and intact, else None (a shard whose
    files no longer match its record is written again, with a warning)."""
    path = record_path(out_dir, name)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        for file, stamp in record["files"].items():
            verify_file(out_dir / file, stamp, f"shard {name}")
    except (ZeroSegError, json.JSONDecodeError, KeyError, TypeError) as error:
        logger.warning("rewriting shard %s: %s", name, error)
        return None
    return record


def start_job(out_dir: Path, identity: dict, info: DistInfo) -> None:
    """Create ``out_dir`` and its ``job.json`` (main rank), or check that the job already there is
    the same job, removing the temporary files of writes a kill interrupted; every rank returns
    once it is safe to write shards."""
    out_dir = Path(out_dir)
    job = out_dir / "job.json"
    if info.is_main:
        if out_dir.exists() and not out_dir.is_dir():
            raise ZeroSegError(f"{out_dir} exists and is not a folder")
        if job.is_file():
            saved = read_json(job, "job description")
            for key, value in identity.items():
                if saved.get(key) != value:
                    raise ZeroSegError(
                        f"{out_dir} holds shards of another job: {key} is {saved.get(key)!r}, "
                        f"this job has {value!r}; choose a new folder or delete it"
                    )
        elif out_dir.is_dir() and any(out_dir.iterdir()):
            raise ZeroSegError(f"{out_dir} is not empty and holds no job.json; choose a new folder")
        else:
            atomic_write_text(job, json.dumps(identity, indent=1))
        for stale in out_dir.glob(".*.tmp"):  # a killed job's unfinished writes
            logger.warning("removed %s, left by an interrupted write", stale.name)
            stale.unlink()
    barrier(info)


def run_shards(
    out_dir: Path,
    names: Sequence[str],
    write: ShardWriter,
    info: DistInfo,
    progress: bool = True,
    desc: str = "shards",
) -> list[dict] | None:
    """Write this rank's unfinished shards; after every rank is done, the main rank returns all
    records in shard order (other ranks return None).

    Args:
        out_dir: the job's folder (``start_job`` already called).
        names: one name per shard; shard i's record is ``names[i].done.json``.
        write: writes shard i (see ``ShardWriter``).
        info: this process's rank and the world size.
    """
    out_dir = Path(out_dir)
    mine = range(info.rank, len(names), info.world_size)
    bar = progress_bar(total=len(mine), desc=desc, enabled=progress and info.is_main)
    skipped = 0
    for index in mine:
        if finished_record(out_dir, names[index]) is not None:
            skipped += 1
        else:
            files, count, extra = write(index)
            stamps = {path.name: file_record(path) for path in files}
            record = {"name": names[index], "count": count, "files": stamps, **extra}
            atomic_write_text(record_path(out_dir, names[index]), json.dumps(record))
        bar.update(1)
    bar.close()
    if skipped:
        logger.info("rank %d: %d of %d shards were already finished", info.rank, skipped, len(mine))
    barrier(info)
    if not info.is_main:
        return None
    records = [finished_record(out_dir, name) for name in names]
    missing = [name for name, record in zip(names, records) if record is None]
    if missing:
        raise ZeroSegError(f"{len(missing)} shards are missing after the job, e.g. {missing[0]}")
    return [record for record in records if record is not None]  # all of them, checked above
