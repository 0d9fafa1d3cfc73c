"""Cached teacher view embeddings (paper §3: features are pre-computed, training uses a fixed crop).

Layout of a cache folder (rows follow the sorted image list; chunk ``c`` holds rows
``c * chunk_rows`` up to ``(c + 1) * chunk_rows``)::

    views-00000.npy  (rows, V, D) float16, the views of each image of the chunk
    dense-00000.npy  (rows, gh * gw, D) float16 dense targets at the student's token grid, only
                     when ``loss.dense_weight`` or ``loss.dense_rank_weight`` > 0 (beyond the paper; ``CLIPTeacher.encode_dense``)
    views-00000.done.json  the chunk's files with their sizes and SHA-256 (the chunk is finished)
    job.json         what the rows mean: teacher identity and weights hash, grids, crop geometry,
                     image-list hash, chunk size
    meta.json        the same plus ``complete: true`` and every chunk's record, once all are written

For ImageNet-1k with ViT-L/14 and 30 views that is about 59 GB. Filling runs under torchrun across
ranks and nodes (chunk c is written by rank c % world size) and resumes: a restarted fill keeps
every finished chunk and writes only the others. Opening checks the identity field by field and
every file's size (and SHA-256 for caches up to ``HASHED_UP_TO``); a cache made for another teacher,
grid or image list, or one truncated or altered, is refused instead of trained on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from zeroseg.config import DataConfig, ExperimentConfig
from zeroseg.data.images import BadImageLog, ImageFolder, SkipUnreadable
from zeroseg.data.sharded_job import read_json, run_shards, start_job
from zeroseg.errors import ZeroSegError
from zeroseg.models.teacher import CLIPTeacher
from zeroseg.runtime.atomic import atomic_write, atomic_write_text
from zeroseg.runtime.distributed import DistInfo, barrier
from zeroseg.runtime.weights_file import file_sha256, verify_file

logger = logging.getLogger(__name__)

CHUNK_ROWS = 1024  # rows per chunk file (ViT-L/14, 30 views: 47 MB)
HASHED_UP_TO = 2 << 30  # caches up to 2 GiB are hashed on every open; larger ones checked by size


def teacher_identity(config: ExperimentConfig) -> dict:
    """What determines the teacher's view embeddings: model, weights (SHA-256 of a local file),
    and the view grids."""
    teacher = config.teacher
    return {
        "teacher_model": teacher.model,
        "teacher_pretrained": teacher.pretrained,
        "teacher_model_config": json.dumps(teacher.model_config, sort_keys=True),
        "teacher_seed": teacher.seed if teacher.pretrained == "none" else None,
        "teacher_weights": _file_hash(teacher.pretrained),
        "grids": list(teacher.grids),
    }


def files_hash(dataset: ImageFolder) -> str:
    """SHA-256 of the image list (relative names, in order)."""
    names = "\n".join(os.path.relpath(p, dataset.root) for p in dataset.files)
    return hashlib.sha256(names.encode()).hexdigest()


def cache_identity(
    config: ExperimentConfig, dataset: ImageFolder, chunk_rows: int = CHUNK_ROWS
) -> dict:
    """Everything that determines the cached rows; compared field by field on load."""
    if chunk_rows <= 0:
        raise ZeroSegError(f"the teacher cache's chunk_rows (--chunk-rows) must be positive, "
                           f"got {chunk_rows}")  # fmt: skip
    return {
        "layout": "chunked-1",
        **teacher_identity(config),
        "image_size": dataset.image_size,
        "resize_short": dataset.resize_short,
        "num_images": len(dataset),
        "files_sha256": files_hash(dataset),
        "chunk_rows": chunk_rows,
        "dense": _dense_identity(config),
    }


def _dense_identity(config: ExperimentConfig) -> dict | None:
    """What the dense targets are, or None when the run uses none."""
    if not config.loss.uses_dense_targets:
        return None
    grid = config.encoder.image_size // config.encoder.patch_size
    teacher = config.teacher
    return {"readout": "maskclip", "size": teacher.dense_size, "grid": [grid, grid]}


def _file_hash(pretrained: str) -> str | None:
    """SHA-256 of a local checkpoint (a teacher retrained in place differs); None for a name."""
    path = Path(pretrained)
    return file_sha256(path) if path.is_file() else None


class ChunkedRows:
    """Rows of a cache's chunk files as one array-like: ``rows[i]`` is row i, ``shape`` the whole."""

    def __init__(self, chunks: list[np.ndarray], chunk_rows: int) -> None:
        self.chunks, self.chunk_rows = chunks, chunk_rows
        self.shape = (sum(len(c) for c in chunks), *chunks[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        chunk, row = divmod(int(index), self.chunk_rows)
        return self.chunks[chunk][row]


class CachedViews(Dataset):
    """Training images paired with their cached teacher views: (image (3,S,S), views (V, D)),
    and their dense targets (N, D) when the cache has them."""

    def __init__(self, dataset: ImageFolder, views, dense=None) -> None:
        self.dataset, self.views, self.dense = dataset, views, dense

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        views = torch.from_numpy(np.asarray(self.views[index], dtype=np.float32))
        if self.dense is None:
            return self.dataset[index], views
        dense = torch.from_numpy(np.asarray(self.dense[index], dtype=np.float32))
        return self.dataset[index], views, dense


def _chunk_names(identity: dict) -> list[str]:
    count = -(-identity["num_images"] // identity["chunk_rows"])
    return [f"views-{c:05d}" for c in range(count)]


def _open_rows(cache_dir: Path, identity: dict, kind: str) -> ChunkedRows:
    names = [name.replace("views", kind) for name in _chunk_names(identity)]
    chunks = [np.load(cache_dir / f"{name}.npy", mmap_mode="r") for name in names]
    return ChunkedRows(chunks, identity["chunk_rows"])


def open_dense(cache_dir: Path, identity: dict) -> ChunkedRows | None:
    """The dense targets of a cache ``open_cache`` accepted, or None when the run uses none."""
    if identity.get("dense") is None:
        return None
    return _open_rows(Path(cache_dir), identity, "dense")


def open_cache(cache_dir: Path, identity: dict) -> ChunkedRows:
    """The views of a complete cache, after checking it matches ``identity`` and is intact."""
    cache_dir = Path(cache_dir)
    meta_path = cache_dir / "meta.json"
    if not meta_path.is_file():
        raise ZeroSegError(f"teacher cache {cache_dir} has no meta.json")
    meta = read_json(meta_path, "teacher cache description")
    if not meta.get("complete"):
        raise ZeroSegError(f"teacher cache {cache_dir} is incomplete; delete it or fill it again")
    for key, value in identity.items():
        if meta.get(key) != value:
            raise ZeroSegError(
                f"teacher cache {cache_dir} is stale: {key} is {meta.get(key)!r}, run needs {value!r}"
            )
    verify_cache_files(cache_dir, meta.get("files", {}))
    return _open_rows(cache_dir, identity, "views")


def verify_cache_files(cache_dir: Path, records: dict) -> None:
    """Refuse a cache whose files changed since they were written: sizes always, SHA-256 when
    the whole cache is at most ``HASHED_UP_TO`` bytes."""
    total = sum(record["bytes"] for record in records.values())
    hash_up_to = None if total <= HASHED_UP_TO else 0
    for name, record in records.items():
        label = f"teacher cache {cache_dir} (delete it to rebuild)"
        verify_file(cache_dir / name, record, label, hash_up_to=hash_up_to)


def fill_cache(
    cache_dir: Path,
    identity: dict,
    dataset: ImageFolder,
    teacher: CLIPTeacher,
    device: torch.device,
    info: DistInfo,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    max_bad_images: int = DataConfig.max_bad_images,
) -> ChunkedRows:
    """Compute every image's views with ``teacher`` (chunks shared over ranks, finished chunks of
    an interrupted fill kept) and return them.

    An unreadable image gets a row of zeros (training never reads it: it puts the next readable
    image, with its row, in its place) and is listed in its chunk's record and in ``meta.json``
    (``skipped``); more than ``max_bad_images`` of them on one rank stop the fill in one line.
    """
    cache_dir = Path(cache_dir)
    bad = BadImageLog(max_bad_images)
    start_job(cache_dir, identity, info)
    names = _chunk_names(identity)
    rows = identity["chunk_rows"]
    grid = tuple(identity["dense"]["grid"]) if identity.get("dense") else None

    def write_chunk(index: int) -> tuple[list[Path], int, dict]:
        readable = SkipUnreadable(dataset, max_bad_images, blank=True)
        part = Subset(readable, range(index * rows, min((index + 1) * rows, len(dataset))))
        views, dense, skipped = [], [], []
        with torch.no_grad():
            loader = DataLoader(part, batch_size=batch_size, num_workers=num_workers)
            for images, unreadable, errors in loader:
                for image_index, error in zip(unreadable.tolist(), errors):
                    if image_index >= 0:
                        bad.record(dataset.files[image_index], error)
                        skipped.append(str(dataset.files[image_index]))
                good = (unreadable < 0).view(-1, 1, 1).numpy()
                images = images.to(device)
                rows_views = teacher.encode_views(images).cpu().numpy().astype(np.float16)
                views.append(rows_views * good)
                if grid is not None:
                    rows_dense = teacher.encode_dense(images, grid).cpu().numpy()
                    dense.append(rows_dense.astype(np.float16) * good)
        files = [_save_npy(cache_dir / f"{names[index]}.npy", np.concatenate(views))]
        if grid is not None:
            dense_name = names[index].replace("views", "dense")
            files.append(_save_npy(cache_dir / f"{dense_name}.npy", np.concatenate(dense)))
        return files, len(part), {"skipped": skipped}

    records = run_shards(cache_dir, names, write_chunk, info, progress, desc="teacher views")
    if records is not None:  # the main rank's (None on the others)
        files = {name: stamp for record in records for name, stamp in record["files"].items()}
        skipped = [path for record in records for path in record.get("skipped", [])]
        complete = {**identity, "complete": True, "files": files, "skipped": skipped}
        atomic_write_text(cache_dir / "meta.json", json.dumps(complete))
        logger.info("teacher cache %s: %d images in %d chunks (%d unreadable, skipped)",
                    cache_dir, len(dataset), len(names), len(skipped))  # fmt: skip
    barrier(info)
    return open_cache(cache_dir, identity)


def _save_npy(path: Path, array: np.ndarray) -> Path:
    """``np.save`` to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array)

    return atomic_write(path, write)


def cached_dataset(
    config: ExperimentConfig,
    dataset: ImageFolder,
    teacher: CLIPTeacher,
    device: torch.device,
    info: DistInfo,
    progress: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> CachedViews:
    """Open ``data.teacher_cache`` (filling it first if it is not complete) and pair it with images."""
    cache_dir = Path(config.data.teacher_cache)
    identity = cache_identity(config, dataset, chunk_rows)
    meta = cache_dir / "meta.json"
    complete = meta.is_file() and read_json(meta, "teacher cache description").get("complete")
    if complete:
        views = open_cache(cache_dir, identity)
    else:
        views = fill_cache(
            cache_dir, identity, dataset, teacher, device, info,
            batch_size=config.optim.micro_batch_size, progress=progress,
            max_bad_images=config.data.max_bad_images,
        )  # fmt: skip
    return CachedViews(dataset, views, open_dense(cache_dir, identity))


def build_cache(
    config: ExperimentConfig, progress: bool = True, chunk_rows: int = CHUNK_ROWS
) -> tuple[int, ...]:
    """Fill ``data.teacher_cache`` for ``data.root`` (under torchrun: shared over ranks and
    nodes; an interrupted fill resumes); returns the views' shape (N, V, D)."""
    from zeroseg.models.teacher import build_teacher
    from zeroseg.runtime.distributed import cleanup, init_distributed, select_device

    device = select_device(config.train.device)
    info = init_distributed(device)
    try:
        images = ImageFolder(config.data.root, config.encoder.image_size, config.data.resize_short)
        teacher = build_teacher(config.teacher).to(device).eval()
        cached = cached_dataset(config, images, teacher, device, info, progress, chunk_rows)
        return cached.views.shape
    finally:
        cleanup(info)
