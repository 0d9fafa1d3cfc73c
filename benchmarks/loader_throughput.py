"""Data for a cached run: images/s per core from a JPEG folder vs a pack, and training images/s.

1. Loader (best of three passes), one process on one core (``torch.set_num_threads(1)``, no DataLoader workers): a folder
   of ImageNet-sized JPEGs (500x375, quality 90, photo-like noise so that they weigh what ImageNet's
   do) read as training does (decode, resize the short side to 256, centre-crop 224), against the
   same images packed by ``zeroseg pack`` (224 crops as JPEG q95, and as raw bytes).
2. Training images/s of the ``tiny`` preset (64 px crops) from the same photos: the teacher online
   (folder), cached views (folder + ``data.teacher_cache``), and a pack with views. Each is timed
   as the difference between a long and a short run, so start-up is left out, after an untimed
   run that fills the cache.

    python benchmarks/loader_throughput.py --images 400
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zeroseg.config import load_config
from zeroseg.data.images import ImageFolder
from zeroseg.data.pack import PackOptions, pack
from zeroseg.data.shard_stream import ShardStream
from zeroseg.runtime.machine import describe
from zeroseg.training.loop import train


def write_photos(folder: Path, count: int) -> tuple[Path, float]:
    """``count`` 500x375 JPEGs of smooth colour fields with grain; returns (folder, mean KB)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    sizes = []
    for i in range(count):
        field = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
        smooth = np.asarray(field.resize((500, 375), Image.BICUBIC), dtype=np.float32)
        grain = rng.normal(0, 18, smooth.shape)
        photo = Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))
        path = folder / f"n{i % 10:08d}" / f"img_{i:05d}.JPEG"
        path.parent.mkdir(exist_ok=True)
        photo.save(path, quality=90)
        sizes.append(path.stat().st_size)
    return folder, float(np.mean(sizes)) / 1024


def images_per_second(samples, repeats: int = 3) -> float:
    """Best of ``repeats`` passes over ``samples()`` (a fresh iterable each time): the shared
    machine's noise only ever slows a pass down."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        seen = sum(1 for _ in samples())
        best = max(best, seen / (time.perf_counter() - start))
    return best


def loader_figures(photos: Path, tmp: Path) -> dict[str, float]:
    folder = ImageFolder(photos, 224, 256)
    figures = {"jpeg folder": images_per_second(lambda: (folder[i] for i in range(len(folder))))}
    config = load_config("paper", [f"data.root={photos}", "teacher.pretrained=none"])
    for encoding in ("jpeg", "raw"):
        out = tmp / f"pack-{encoding}"
        pack(config, out, PackOptions(shard_size=100, encoding=encoding), progress=False)
        stream = ShardStream(str(out), batch_size=1)
        stream.set_position(0)
        figures[f"pack ({encoding})"] = images_per_second(stream.__iter__)
    return figures


def training_figures(photos: Path, tmp: Path, steps: int) -> dict[str, float]:
    base = ["train.log_every=1000", "data.num_workers=0"]
    setups = {
        "teacher online (folder)": [f"data.root={photos}"],
        "cached views (folder)": [f"data.root={photos}", f"data.teacher_cache={tmp / 'cache'}"],
        "pack with views": [f"data.shards={tmp / 'pack-views'}"],
    }
    pack(load_config("tiny", [f"data.root={photos}"]), tmp / "pack-views",
         PackOptions(shard_size=50, views=True), progress=False)  # fmt: skip
    figures = {}
    for name, overrides in setups.items():
        seconds = {}
        warm = load_config("tiny", [*base, *overrides, "train.steps=1"])
        train(warm, tmp / f"warm-{len(figures)}", progress=False)  # fills the cache, untimed
        for n in (2, 2 + steps):
            config = load_config("tiny", [*base, *overrides, f"train.steps={n}"])
            start = time.perf_counter()
            train(config, tmp / f"run-{len(figures)}-{n}", progress=False)
            seconds[n] = time.perf_counter() - start
        images = steps * config.optim.batch_size
        figures[name] = images / (seconds[2 + steps] - seconds[2])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per setup")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        photos, kb = write_photos(tmp / "photos", args.images)
        torch.set_num_threads(1)
        print(f"machine: {describe(torch.device('cpu'))}")
        print(f"{args.images} JPEGs of 500x375, {kb:.0f} KB on average")
        loader = loader_figures(photos, tmp)
        print("loader, one core           images/s   x folder")
        for name, value in loader.items():
            print(f"  {name:<24} {value:8.1f}   {value / loader['jpeg folder']:6.2f}")
        torch.set_num_threads(2)
        trained = training_figures(photos, tmp, args.steps)
        print(f"training, tiny preset, {torch.get_num_threads()} threads   images/s   x online")
        for name, value in trained.items():
            first = trained["teacher online (folder)"]
            print(f"  {name:<28} {value:8.1f}   {value / first:6.2f}")


if __name__ == "__main__":
    main()
