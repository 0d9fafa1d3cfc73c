"""What the training loop reads: images from a folder (with cached teacher views or not) or a
pack of shards, as an endless, resumable stream of micro-batches.

Either way the stream after ``consumed`` micro-batches is exactly what an uninterrupted run would
have read next: a folder through ``ResumableSampler`` (a ``DistributedSampler`` epoch started
part-way), a pack through ``ShardStream.set_position``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from zeroseg.config import ExperimentConfig
from zeroseg.data.images import BadImageLog, ImageFolder, SkipUnreadable
from zeroseg.data.shard_stream import ShardStream
from zeroseg.data.teacher_cache import CachedViews, cached_dataset, teacher_identity
from zeroseg.errors import ZeroSegError
from zeroseg.models.teacher import CLIPTeacher
from zeroseg.runtime.distributed import DistInfo


class ResumableSampler(torch.utils.data.Sampler):
    """A ``DistributedSampler`` whose current epoch can start part-way, after ``skip`` indices.

    Resuming mid-epoch then feeds exactly the samples an uninterrupted run would have fed next,
    without loading the ones already seen.
    """

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler, self.skip = sampler, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(list(self.sampler)[self.skip :])

    def __len__(self) -> int:
        return len(self.sampler) - self.skip


@dataclass
class TrainingData:
    """The run's data: ``num_images`` for the schedule, ``batches(consumed)`` for the loop."""

    num_images: int
    loader: DataLoader
    position: ResumableSampler | ShardStream
    # a folder's unreadable images (``SkipUnreadable``), counted and listed; None for a pack
    bad_images: BadImageLog | None = None
    files: list[Path] | None = None

    def record_skipped_in(self, run_dir: Path, rank: int, keep: bool) -> None:
        """List unreadable images in ``run_dir/skipped_images.json`` (rank r > 0:
        ``skipped_images.rank{r}.json``); with ``keep`` (a resumed run) after those listed there."""
        if self.bad_images is not None:
            name = "skipped_images.json" if rank == 0 else f"skipped_images.rank{rank}.json"
            self.bad_images.path = Path(run_dir) / name
            if keep:
                self.bad_images.load()

    def batches(self, consumed: int) -> Iterator:
        """Endless micro-batches, reshuffled every epoch, starting after ``consumed`` of them
        (this rank's micro-batches already trained on)."""
        for batch in self._batches(consumed):
            yield batch if self.bad_images is None else self._strip(batch)

    def _strip(self, batch: list) -> object:
        """A batch of ``SkipUnreadable`` without its last two fields, recording what they name."""
        assert self.bad_images is not None and self.files is not None
        *fields, indices, errors = batch
        for index, error in zip(indices.tolist(), errors):
            if index >= 0:
                self.bad_images.record(self.files[index], error)
        return fields[0] if len(fields) == 1 else fields

    def _batches(self, consumed: int) -> Iterator:
        if isinstance(self.position, ShardStream):
            epoch, done = self.position.locate(consumed)
            while True:
                self.position.set_position(epoch, done)
                yield from self.loader
                epoch, done = epoch + 1, 0
        batch_size = self.loader.batch_size
        assert batch_size is not None  # a folder's loader batches (``_loader``)
        per_epoch = len(self.position.sampler) // batch_size  # drop_last
        epoch, done = divmod(consumed, per_epoch)
        while True:
            self.position.set_epoch(epoch, skip=done * batch_size)
            yield from self.loader
            epoch, done = epoch + 1, 0


def training_data(
    config: ExperimentConfig,
    info: DistInfo,
    device: torch.device,
    teacher: CLIPTeacher,
    progress: bool = True,
) -> TrainingData:
    """The loader of ``data.shards`` or of ``data.root`` (filling ``data.teacher_cache`` first
    when it is set and not complete)."""
    if config.data.shards:
        stream = pack_stream(config, info)
        return TrainingData(stream.num_images, _loader(config, stream, device), stream)
    images = ImageFolder(config.data.root, config.encoder.image_size, config.data.resize_short)
    dataset: ImageFolder | CachedViews = images
    if config.data.teacher_cache:
        dataset = cached_dataset(config, images, teacher, device, info, progress)
    readable = SkipUnreadable(dataset, config.data.max_bad_images)
    sampler = ResumableSampler(
        DistributedSampler(
            readable, info.world_size, info.rank, shuffle=True, seed=config.train.seed,
            drop_last=True,
        )
    )  # fmt: skip
    loader = _loader(config, readable, device, sampler)
    if len(loader) == 0:
        raise ZeroSegError(
            f"{len(dataset)} images under {config.data.root} are fewer than one micro-batch per rank"
        )
    bad = BadImageLog(config.data.max_bad_images)
    return TrainingData(len(dataset), loader, sampler, bad, images.files)


def pack_stream(config: ExperimentConfig, info: DistInfo) -> ShardStream:
    """``data.shards`` for this rank, after checking the pack fits the run: crop geometry, and
    views made by this run's teacher (a pack without views runs the teacher online)."""
    location = config.data.shards
    stream = ShardStream(
        location, config.optim.micro_batch_size, info.rank, info.world_size,
        config.data.num_workers, config.train.seed,
    )  # fmt: skip
    manifest = stream.manifest
    if manifest["image_size"] != config.encoder.image_size:
        raise ZeroSegError(
            f"the pack at {location} holds {manifest['image_size']}px crops; "
            f"encoder.image_size is {config.encoder.image_size}"
        )
    if config.loss.uses_dense_targets:
        raise ZeroSegError(
            "dense targets (loss.dense_weight, loss.dense_rank_weight) come from data.teacher_cache, not a pack"
        )
    if manifest.get("views"):
        for key, value in teacher_identity(config).items():
            if manifest["views"].get(key) != value:
                raise ZeroSegError(
                    f"the pack at {location} holds views of another teacher: {key} is "
                    f"{manifest['views'].get(key)!r}, the run's teacher has {value!r}"
                )
        stream.with_views = True
    return stream


def _loader(config: ExperimentConfig, dataset, device: torch.device, sampler=None) -> DataLoader:
    workers = config.data.num_workers
    return DataLoader(
        dataset,
        batch_size=config.optim.micro_batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        # a pack's workers are restarted each epoch, so that they see its new position
        persistent_workers=workers > 0 and sampler is not None,
        # its own generator: starting an epoch's iterator must not draw from the global RNG
        # that masks and Gumbel noise use, or a resumed run would draw different masks
        generator=torch.Generator().manual_seed(config.train.seed),
    )
