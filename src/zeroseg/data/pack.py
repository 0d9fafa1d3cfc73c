"""``zeroseg pack``: training crops as WebDataset tar shards, optionally with their teacher views.

A training step from a folder of JPEGs decodes and resizes every photo (ImageNet: ~110 KB,
~400x350, resized to 256 and cropped to 224); at the thousands of images per second a cached run
consumes, that is the bottleneck. A pack stores each image as the crop the student sees (resize
short side, centre crop), as a JPEG of a stated quality or as raw bytes, and optionally its 30
teacher views (float16) in the same record, so one streaming read feeds a training step.

Layout (standard WebDataset: a record is the tar members sharing a key)::

    shard-000000.tar       KEY.jpg (or KEY.image.npy, uint8 (S, S, 3)), KEY.views.npy (V, D)
                           float16 when packed with views, KEY.name.txt (the source file)
    shard-000000.done.json the shard's size, SHA-256 and record count (the shard is finished)
    job.json               what the pack is (see ``pack_identity``), written before any shard
    manifest.json          the same plus every shard's name, count, size and SHA-256

Records are shuffled once with ``PackOptions.seed`` before they are cut into shards, so each shard
mixes the whole dataset (an ImageNet class folder does not fill one shard). Under torchrun every
rank of every node packs a disjoint set of shards (shard i by rank i % world size), and a packing
job that is killed and restarted keeps its finished shards.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zeroseg.config import DataConfig, ExperimentConfig
from zeroseg.data.images import BadImageLog, ImageFolder, read_crop, to_tensor
from zeroseg.data.sharded_job import read_json, run_shards, start_job
from zeroseg.data.teacher_cache import files_hash, teacher_identity
from zeroseg.errors import ZeroSegError
from zeroseg.models.teacher import CLIPTeacher
from zeroseg.runtime.atomic import atomic_write_bytes, atomic_write_text
from zeroseg.runtime.distributed import barrier

logger = logging.getLogger(__name__)

FORMAT = "zeroseg-shards-1"


@dataclass(frozen=True)
class PackOptions:
    """How a pack is cut and stored."""

    shard_size: int = 1000  # records per shard (ImageNet: ~1282 shards of ~110 MB with views)
    encoding: str = "jpeg"  # jpeg | raw (uint8 arrays: no decoding, ~1.6x the bytes of the JPEG)
    quality: int = 95  # JPEG quality of the stored crops
    seed: int = 0  # the one shuffle of the records before they are cut into shards
    views: bool = False  # store the teacher's views of each crop in its record

    def __post_init__(self) -> None:
        if self.shard_size <= 0:
            raise ZeroSegError(f"--shard-size must be positive, got {self.shard_size}")
        if self.encoding not in ("jpeg", "raw"):
            raise ZeroSegError(f"--encoding must be jpeg or raw, got {self.encoding!r}")
        if not 1 <= self.quality <= 100:
            raise ZeroSegError(f"--quality must be within 1..100, got {self.quality}")


def pack_identity(config: ExperimentConfig, images: ImageFolder, options: PackOptions) -> dict:
    """What the shards hold; training compares the crop geometry and the views' teacher."""
    return {
        "format": FORMAT,
        "image_size": images.image_size,
        "resize_short": images.resize_short,
        "encoding": options.encoding,
        "quality": options.quality if options.encoding == "jpeg" else None,
        "shard_size": options.shard_size,
        "seed": options.seed,
        "num_images": len(images),
        "files_sha256": files_hash(images),
        "views": teacher_identity(config) if options.views else None,
    }


def shard_names(num_images: int, shard_size: int) -> list[str]:
    return [f"shard-{i:06d}" for i in range(-(-num_images // shard_size))]


def encode_crop(crop: Image.Image, options: PackOptions) -> tuple[str, bytes]:
    """(member suffix, bytes) of a crop as the pack stores it."""
    if options.encoding == "jpeg":
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", quality=options.quality)
        return "jpg", buffer.getvalue()
    return "image.npy", npy_bytes(np.asarray(crop, dtype=np.uint8))


def decode_crop(suffix: str, data: bytes) -> torch.Tensor:
    """(3, S, S) float [0, 1] of a stored crop."""
    if suffix == "jpg":
        with Image.open(io.BytesIO(data)) as img:
            return to_tensor(img if img.mode == "RGB" else img.convert("RGB"))
    array = np.load(io.BytesIO(data))
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A tar of ``(name, bytes)`` members, the same bytes for the same members (mtime 0)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o444
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ShardPacker:
    """Writes shard i of a pack: reads, crops and encodes its images, adds teacher views."""

    def __init__(
        self,
        out_dir: Path,
        images: ImageFolder,
        options: PackOptions,
        teacher: CLIPTeacher | None = None,
        device: torch.device | None = None,
        batch_size: int = 64,
        bad_images: BadImageLog | None = None,
    ) -> None:
        self.out_dir, self.images, self.options = Path(out_dir), images, options
        self.teacher, self.device, self.batch_size = teacher, device, batch_size
        self.bad_images = (
            bad_images if bad_images is not None else BadImageLog(DataConfig.max_bad_images)
        )
        generator = np.random.default_rng(options.seed)
        self.order = generator.permutation(len(images))
        self.names = shard_names(len(images), options.shard_size)

    def __call__(self, index: int) -> tuple[list[Path], int, dict]:
        size = self.options.shard_size
        members, crops, skipped = [], [], []
        for image_index in self.order[index * size : (index + 1) * size]:
            path = self.images.files[image_index]
            try:
                crop = read_crop(path, self.images.resize_short, self.images.image_size)
            except ZeroSegError as error:
                skipped.append(str(path))
                self.bad_images.record(path, str(error))  # raises past data.max_bad_images
                continue
            key = f"{image_index:09d}"
            suffix, data = encode_crop(crop, self.options)
            name = os.path.relpath(path, self.images.root).encode()
            members.append([(f"{key}.{suffix}", data), (f"{key}.name.txt", name)])
            crops.append(decode_crop(suffix, data))  # the teacher sees what the student will
        if self.teacher is not None and crops:
            views = self._views(self.teacher, torch.stack(crops))
            for record, row in zip(members, views):
                record.insert(1, (record[0][0].split(".")[0] + ".views.npy", npy_bytes(row)))
        path = self.out_dir / f"{self.names[index]}.tar"
        atomic_write_bytes(path, tar_bytes([m for record in members for m in record]))
        return [path], len(members), {"skipped": skipped}

    @torch.no_grad()
    def _views(self, teacher: CLIPTeacher, crops: torch.Tensor) -> np.ndarray:
        """(N, V, D) float16 teacher views of (N, 3, S, S) crops."""
        parts = [
            teacher.encode_views(batch.to(self.device)).cpu().numpy().astype(np.float16)
            for batch in crops.split(self.batch_size)
        ]
        return np.concatenate(parts)


def pack(
    config: ExperimentConfig, out_dir: str | Path, options: PackOptions, progress: bool = True
) -> dict:
    """Pack ``data.root`` (a folder, or a text file listing images) into shards in ``out_dir``,
    shared over torchrun's ranks and nodes and resumable; returns the manifest."""
    from zeroseg.models.teacher import build_teacher
    from zeroseg.runtime.distributed import cleanup, init_distributed, select_device

    if not config.data.root:
        raise ZeroSegError("nothing to pack: pass --data DIR_OR_LIST")
    out_dir = Path(out_dir)
    device = select_device(config.train.device)
    info = init_distributed(device)
    try:
        images = ImageFolder(config.data.root, config.encoder.image_size, config.data.resize_short)
        identity = pack_identity(config, images, options)
        start_job(out_dir, identity, info)
        teacher = build_teacher(config.teacher).to(device).eval() if options.views else None
        packer = ShardPacker(
            out_dir, images, options, teacher, device, config.optim.micro_batch_size,
            BadImageLog(config.data.max_bad_images),
        )  # fmt: skip
        records = run_shards(out_dir, packer.names, packer, info, progress, desc="pack")
        # records: the main rank's (None on the others)
        manifest = _write_manifest(out_dir, identity, records) if records is not None else None
        barrier(info)
        return manifest or read_json(out_dir / "manifest.json", "pack manifest")
    finally:
        cleanup(info)


def _write_manifest(out_dir: Path, identity: dict, records: list[dict]) -> dict:
    shards = []
    for record in records:
        ((name, stamp),) = record["files"].items()
        shards.append({"name": name, "count": record["count"], **stamp})
    skipped = [path for record in records for path in record.get("skipped", [])]
    total = sum(shard["count"] for shard in shards)
    manifest = {**identity, "complete": True, "total": total, "skipped": skipped, "shards": shards}
    atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1))
    logger.info("packed %d images into %d shards in %s (%d unreadable, skipped)",
                total, len(shards), out_dir, len(skipped))  # fmt: skip
    return manifest
