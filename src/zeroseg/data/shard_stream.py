"""Reading packed shards for training: split by rank and worker, reshuffled every epoch, resumable.

``data.shards`` names a pack made by ``zeroseg pack``: a local folder (or its ``manifest.json``), a
URL of that folder (``https://host/packs/imagenet``, read with WebDataset's openers), or any
WebDataset URL with ``{name}`` where the file name goes (``pipe:aws s3 cp s3://b/pack/{name} -``).

Epoch ``e`` is a function of the seed alone: the shards are permuted with ``(seed, e)``; rank r of
W takes every W-th of them, and within the rank, DataLoader worker w of K every K-th; a worker
reads its shards in turn, each in an order permuted with ``(seed, e, shard)``. The DataLoader
interleaves the workers' batches round-robin, so the batches this rank sees in an epoch, and their
order, are known in advance: resuming after ``n`` batches tells each worker how many samples it
already delivered, and it skips them (whole shards unread) instead of replaying the epoch.

Each shard's SHA-256 is checked against the manifest as it is read; a shard with flipped bytes is
refused with an error naming it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from zeroseg.data.pack import FORMAT, decode_crop
from zeroseg.errors import ZeroSegError, first_line


def _is_url(location: str) -> bool:
    return "://" in location or location.startswith("pipe:")


def read_bytes(url: str) -> bytes:
    """The bytes of a local file or of any URL WebDataset's ``gopen`` reads."""
    try:
        if not _is_url(url):
            return Path(url).read_bytes()
        from webdataset import gopen

        with gopen(url) as stream:
            return stream.read()
    except Exception as error:  # noqa: BLE001 - any opener's failure, named in one line
        raise ZeroSegError(f"cannot read {url}: {first_line(error)}") from None


def shard_template(location: str) -> str:
    """``location`` as a template with ``{name}`` for a file of the pack."""
    if "{name}" in location:
        return location
    if _is_url(location):
        base = location[: -len("manifest.json")] if location.endswith("manifest.json") else location
        return base.rstrip("/") + "/{name}"
    path = Path(location)
    folder = path.parent if path.name == "manifest.json" else path
    return str(folder / "{name}")


def read_manifest(location: str) -> tuple[dict, str]:
    """(manifest, template) of a complete pack, or a one-line error naming what is wrong."""
    template = shard_template(location)
    url = template.format(name="manifest.json")
    if not _is_url(url) and not Path(url).is_file():
        raise ZeroSegError(f"no packed shards at {location}: {url} does not exist (zeroseg pack)")
    try:
        manifest = json.loads(read_bytes(url))
    except json.JSONDecodeError as error:
        raise ZeroSegError(f"pack manifest {url} is not JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ZeroSegError(f"{url} is not a zeroseg pack manifest (format {FORMAT!r})")
    if not manifest.get("complete"):
        raise ZeroSegError(f"the pack at {location} is incomplete; run zeroseg pack again")
    shards = manifest.get("shards")
    fields = ("name", "count", "sha256")
    if not shards or not all(isinstance(e, dict) and all(f in e for f in fields) for e in shards):
        raise ZeroSegError(f"pack manifest {url} lists no shards, or shards without {fields}")
    return manifest, template


def delivered_per_worker(batches: list[int], done: int) -> tuple[list[int], int]:
    """(batches each worker has delivered, the worker whose turn is next) after ``done`` batches
    of an epoch, when the DataLoader takes one batch from each worker in turn, skipping workers
    with none left."""
    taken, turn = [0] * len(batches), 0
    for _ in range(done):
        for _ in range(len(batches)):
            if taken[turn] < batches[turn]:
                break
            turn = (turn + 1) % len(batches)
        else:
            raise ValueError(f"{done} batches exceed the epoch's {sum(batches)}")
        taken[turn] += 1
        turn = (turn + 1) % len(batches)
    return taken, turn


class ShardStream(IterableDataset):
    """Training samples of a pack: ``image`` (3, S, S) float [0, 1], or ``(image, views (V, D))``
    when ``with_views`` (the pack must hold them).

    ``set_position(epoch, done)`` (called before iterating, as DataLoader workers are restarted
    for each epoch) chooses the epoch and how many of this rank's batches of it were already used.
    """

    def __init__(
        self,
        location: str,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        seed: int = 0,
        with_views: bool = False,
    ) -> None:
        self.manifest, self.template = read_manifest(location)
        self.location, self.batch_size, self.seed = location, batch_size, seed
        self.rank, self.world_size, self.workers = rank, world_size, max(1, num_workers)
        self.counts = [shard["count"] for shard in self.manifest["shards"]]
        self.with_views = with_views
        if with_views and not self.manifest.get("views"):
            raise ZeroSegError(
                f"the pack at {location} holds no teacher views (zeroseg pack --views)"
            )
        if len(self.counts) < world_size:
            raise ZeroSegError(
                f"the pack at {location} has {len(self.counts)} shards for {world_size} ranks; "
                "pack it again with a smaller --shard-size"
            )
        self.epoch, self.skip, self.turn = 0, [0] * self.workers, 0

    @property
    def num_images(self) -> int:
        return sum(self.counts)

    def worker_shards(self, epoch: int) -> list[list[int]]:
        """Shard indices of each of this rank's workers in epoch ``epoch``, in reading order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.counts))
        mine = order[self.rank :: self.world_size]
        return [[int(s) for s in mine[w :: self.workers]] for w in range(self.workers)]

    def worker_batches(self, epoch: int) -> list[int]:
        """Full batches each worker yields in epoch ``epoch`` (a worker's last partial one is
        dropped, as ``DataLoader(drop_last=True)`` does per worker)."""
        shards = self.worker_shards(epoch)
        return [sum(self.counts[s] for s in mine) // self.batch_size for mine in shards]

    def locate(self, consumed: int) -> tuple[int, int]:
        """(epoch, batches into it) after this rank consumed ``consumed`` batches in all."""
        epoch = 0
        while consumed >= (per_epoch := sum(self.worker_batches(epoch))):
            if per_epoch == 0:
                raise ZeroSegError(
                    f"the pack at {self.location} is smaller than one batch per worker"
                )
            consumed, epoch = consumed - per_epoch, epoch + 1
        return epoch, consumed

    def set_position(self, epoch: int, done: int = 0) -> None:
        """Start epoch ``epoch`` after its first ``done`` batches. The DataLoader always asks
        its worker 0 first, so worker k plays the part of worker (turn + k) % K."""
        taken, turn = delivered_per_worker(self.worker_batches(epoch), done)
        self.epoch, self.skip, self.turn = epoch, [t * self.batch_size for t in taken], turn

    def __iter__(self) -> Iterator:
        info = get_worker_info()
        if (info.num_workers if info is not None else 1) != self.workers:
            raise ZeroSegError("ShardStream was built for another number of DataLoader workers")
        worker = ((info.id if info is not None else 0) + self.turn) % self.workers
        skip = self.skip[worker]
        for shard in self.worker_shards(self.epoch)[worker]:
            count = self.counts[shard]
            if skip >= count:
                skip -= count
                continue
            records = self.read_shard(shard)
            for index in self.shard_order(self.epoch, shard)[skip:]:
                yield self.decode(records[index])
            skip = 0

    def read_shard(self, index: int) -> list[dict[str, bytes]]:
        """The records of shard ``index`` (each a dict of member suffix -> bytes), after checking
        the shard's SHA-256 against the manifest."""
        entry = self.manifest["shards"][index]
        url = self.template.format(name=entry["name"])
        data = read_bytes(url)
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ZeroSegError(
                f"shard {url} is corrupt: {len(data)} bytes whose SHA-256 differs from the "
                "manifest's; pack or download it again"
            )
        records: dict[str, dict[str, bytes]] = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                if handle is None:  # a folder or other member without data
                    continue
                key, _, suffix = member.name.partition(".")
                records.setdefault(key, {})[suffix] = handle.read()
        if len(records) != entry["count"]:
            raise ZeroSegError(
                f"shard {url} holds {len(records)} records, manifest says {entry['count']}"
            )
        return list(records.values())

    def decode(self, record: dict[str, bytes]):
        """A record's training sample (see the class docstring)."""
        suffix = "jpg" if "jpg" in record else "image.npy"
        image = decode_crop(suffix, record[suffix])
        if not self.with_views:
            return image
        views = np.load(io.BytesIO(record["views.npy"])).astype(np.float32)
        return image, torch.from_numpy(views)

    def shard_order(self, epoch: int, shard: int) -> np.ndarray:
        """The order in which shard ``shard``'s records are read in epoch ``epoch``."""
        return np.random.default_rng([self.seed, epoch, shard]).permutation(self.counts[shard])

    def keys(self, epoch: int) -> list[str]:
        """Source names of the samples this rank sees in epoch ``epoch``, worker by worker (reads
        the shards; for checks and tests)."""
        names = []
        for shards, batches in zip(self.worker_shards(epoch), self.worker_batches(epoch)):
            seen = []
            for shard in shards:
                records = self.read_shard(shard)
                seen += [records[i]["name.txt"].decode() for i in self.shard_order(epoch, shard)]
            names += seen[: batches * self.batch_size]
        return names
