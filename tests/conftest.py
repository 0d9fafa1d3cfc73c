"""Shared fixtures: tiny configs, folders of synthetic images, a trained tiny run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zeroseg.config import ExperimentConfig, load_config


def write_images(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = (72, 88)) -> Path:
    """Write ``count`` small RGB images with coloured rectangles (two nested folders, like ImageNet)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = size
        array = np.zeros((h, w, 3), dtype=np.uint8)
        array[:] = rng.integers(0, 255, 3)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        array[y : y + h // 2, x : x + w // 2] = rng.integers(0, 255, 3)
        sub = folder / f"class_{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(sub / f"img_{i:03d}.png")
    return folder


def tiny_config(**overrides: str) -> ExperimentConfig:
    items = [f"{k}={v}" for k, v in overrides.items()]
    return load_config("tiny", items)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"), 32)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, image_folder) -> Path:
    """A tiny run trained for 6 steps (checkpoints at 3 and 6)."""
    from zeroseg.training import train

    run = tmp_path_factory.mktemp("run")
    config = load_config(
        "tiny", [f"data.root={image_folder}", "train.steps=6", "train.checkpoint_every=3"]
    )
    train(config, run, progress=False)
    return run


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
