"""Cached teacher view embeddings (paper §3: features are pre-computed, training uses a fixed crop).

Layout of a cache folder::

    views.npy    (N, V, D) float16 memmap, row i = the views of image i of the sorted file list
    dense.npy    (N, gh * gw, D) float16 memmap of dense targets at the student's token grid, only
                 when ``loss.dense_weight`` > 0 (beyond the paper; ``CLIPTeacher.encode_dense``)
    meta.json    what the rows mean (teacher identity, grids, crop geometry, file-list hash) and
                 ``complete: true`` once every row is written, with each file's size and SHA-256
                 (checked on open: a truncated or altered cache is refused, not trained on)

For ImageNet-1k with ViT-L/14 and 30 views that is about 59 GB. Filling is sharded across ranks
under torchrun (rank r writes rows r, r+W, ...). A cache whose meta does not match the run's config
is refused loudly instead of silently training on stale targets.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from zeroseg.atomic import atomic_write_text
from zeroseg.config import ExperimentConfig
from zeroseg.data.images import ImageFolder
from zeroseg.distributed import DistInfo, barrier
from zeroseg.errors import ZeroSegError
from zeroseg.progress import progress as progress_bar
from zeroseg.teacher import CLIPTeacher
from zeroseg.weights_file import file_record, verify_file

logger = logging.getLogger(__name__)


def cache_identity(config: ExperimentConfig, dataset: ImageFolder) -> dict:
    """Everything that determines the cached rows; compared field by field on load."""
    names = "\n".join(str(p.relative_to(dataset.root)) for p in dataset.files)
    teacher = config.teacher
    return {
        "teacher_model": teacher.model,
        "teacher_pretrained": teacher.pretrained,
        "teacher_model_config": json.dumps(teacher.model_config, sort_keys=True),
        "teacher_seed": teacher.seed if teacher.pretrained == "none" else None,
        "teacher_weights": _file_stamp(teacher.pretrained),
        "grids": list(teacher.grids),
        "image_size": dataset.image_size,
        "resize_short": dataset.resize_short,
        "num_images": len(dataset),
        "files_sha256": hashlib.sha256(names.encode()).hexdigest(),
        "dense": _dense_identity(config),
    }


def _dense_identity(config: ExperimentConfig) -> dict | None:
    """What the dense targets are, or None when the run uses none."""
    if not config.loss.dense_weight:
        return None
    grid = config.encoder.image_size // config.encoder.patch_size
    teacher = config.teacher
    return {"readout": teacher.dense_readout, "size": teacher.dense_size, "grid": [grid, grid]}


def _file_stamp(pretrained: str) -> str | None:
    """Size and modification time of a local checkpoint (a teacher retrained in place differs)."""
    path = Path(pretrained)
    if not path.is_file():
        return None
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


class CachedViews(Dataset):
    """Training images paired with their cached teacher views: (image (3,S,S), views (V, D)),
    and their dense targets (N, D) when the cache has them."""

    def __init__(
        self, dataset: ImageFolder, views: np.ndarray, dense: np.ndarray | None = None
    ) -> None:
        self.dataset, self.views, self.dense = dataset, views, dense

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        views = torch.from_numpy(np.asarray(self.views[index], dtype=np.float32))
        if self.dense is None:
            return self.dataset[index], views
        dense = torch.from_numpy(np.asarray(self.dense[index], dtype=np.float32))
        return self.dataset[index], views, dense


def open_dense(cache_dir: Path, identity: dict) -> np.ndarray | None:
    """The dense targets of a cache ``open_cache`` accepted, or None when the run uses none."""
    if identity.get("dense") is None:
        return None
    return np.load(Path(cache_dir) / "dense.npy", mmap_mode="r")


def open_cache(cache_dir: Path, identity: dict) -> np.ndarray:
    """Memory-map a complete cache's views after checking it matches ``identity``."""
    meta_path = Path(cache_dir) / "meta.json"
    if not meta_path.is_file():
        raise ZeroSegError(f"teacher cache {cache_dir} has no meta.json")
    meta = json.loads(meta_path.read_text())
    if not meta.get("complete"):
        raise ZeroSegError(f"teacher cache {cache_dir} is incomplete; delete it or fill it again")
    for key, value in identity.items():
        if meta.get(key) != value:
            raise ZeroSegError(
                f"teacher cache {cache_dir} is stale: {key} is {meta.get(key)!r}, run needs {value!r}"
            )
    verify_cache_files(Path(cache_dir), meta.get("files", {}))
    return np.load(Path(cache_dir) / "views.npy", mmap_mode="r")


HASHED_UP_TO = 2 << 30  # files up to 2 GiB are hashed on every open; larger ones checked by size


def verify_cache_files(cache_dir: Path, records: dict) -> None:
    """Refuse a cache whose files changed since they were written (size always; SHA-256 for
    files up to ``HASHED_UP_TO``). Caches written before records existed are not checked."""
    for name, record in records.items():
        label = f"teacher cache {cache_dir} (delete it to rebuild)"
        verify_file(cache_dir / name, record, label, hash_up_to=HASHED_UP_TO)


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
) -> np.ndarray:
    """Compute every image's views with ``teacher`` (sharded over ranks) and return the memmap."""
    cache_dir = Path(cache_dir)
    views_path = cache_dir / "views.npy"
    shape = (len(dataset), teacher.num_views, teacher.embed_dim)
    if info.is_main:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_dir / "meta.json", json.dumps({**identity, "complete": False}))
        np.lib.format.open_memmap(views_path, mode="w+", dtype=np.float16, shape=shape).flush()
        if identity.get("dense"):
            gh, gw = identity["dense"]["grid"]
            dense_shape = (len(dataset), gh * gw, teacher.embed_dim)
            np.lib.format.open_memmap(
                cache_dir / "dense.npy", mode="w+", dtype=np.float16, shape=dense_shape
            ).flush()
    barrier(info)
    rows = np.load(views_path, mmap_mode="r+")
    dense_rows = np.load(cache_dir / "dense.npy", mmap_mode="r+") if identity.get("dense") else None
    indices = list(range(info.rank, len(dataset), info.world_size))
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, num_workers=num_workers)
    bar = progress_bar(total=len(indices), desc="teacher views", enabled=progress and info.is_main)
    position = 0
    for images in loader:
        images = images.to(device)
        batch_rows = indices[position : position + len(images)]
        rows[batch_rows] = teacher.encode_views(images).cpu().numpy().astype(np.float16)
        if dense_rows is not None:
            grid = tuple(identity["dense"]["grid"])
            dense_rows[batch_rows] = teacher.encode_dense(images, grid).cpu().numpy()
        position += len(images)
        bar.update(len(images))
    bar.close()
    rows.flush()
    if dense_rows is not None:
        dense_rows.flush()
    del rows, dense_rows
    barrier(info)
    if info.is_main:
        names = ["views.npy"] + (["dense.npy"] if identity.get("dense") else [])
        files = {name: file_record(cache_dir / name) for name in names}
        complete = {**identity, "complete": True, "files": files}
        atomic_write_text(cache_dir / "meta.json", json.dumps(complete))
        logger.info("teacher cache %s: %s float16", cache_dir, "x".join(map(str, shape)))
    barrier(info)
    return open_cache(cache_dir, identity)


def cached_dataset(
    config: ExperimentConfig,
    dataset: ImageFolder,
    teacher: CLIPTeacher,
    device: torch.device,
    info: DistInfo,
    progress: bool = True,
) -> CachedViews:
    """Open ``data.teacher_cache`` (filling it first if it is not complete) and pair it with images."""
    cache_dir = Path(config.data.teacher_cache)
    identity = cache_identity(config, dataset)
    meta = cache_dir / "meta.json"
    complete = meta.is_file() and json.loads(meta.read_text()).get("complete")
    if complete:
        views = open_cache(cache_dir, identity)
    else:
        views = fill_cache(
            cache_dir, identity, dataset, teacher, device, info,
            batch_size=config.optim.micro_batch_size, progress=progress,
        )  # fmt: skip
    return CachedViews(dataset, views, open_dense(cache_dir, identity))


def build_cache(config: ExperimentConfig, progress: bool = True) -> tuple[int, ...]:
    """Fill ``data.teacher_cache`` for ``data.root`` (under torchrun: sharded); returns its shape."""
    from zeroseg.distributed import cleanup, init_distributed, select_device
    from zeroseg.teacher import build_teacher

    device = select_device(config.train.device)
    info = init_distributed(device)
    try:
        images = ImageFolder(config.data.root, config.encoder.image_size, config.data.resize_short)
        teacher = build_teacher(config.teacher).to(device)
        return cached_dataset(config, images, teacher, device, info, progress).views.shape
    finally:
        cleanup(info)
