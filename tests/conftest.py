"""Shared fixtures: tiny configs, folders of synthetic images, a trained tiny run.

The suite is hermetic: the Hugging Face Hub's offline switch is on for every test (and every
process a test starts), so no test downloads weights whether or not a network is reachable, and
any attempt to open a connection beyond this machine fails the test that made it.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub

import socket  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from zeroseg.config import ExperimentConfig, load_config  # noqa: E402

LOCAL_HOSTS = ("127.", "::1", "localhost", "0.0.0.0")


class NetworkAccessError(AssertionError):
    """A test tried to reach beyond this machine."""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Fail any connection to a non-local address, as if the network were there but forbidden."""
    real_connect, real_create = socket.socket.connect, socket.create_connection

    def check(address) -> None:
        host = str(address[0] if isinstance(address, tuple) else address)
        if not host.startswith(LOCAL_HOSTS):
            raise NetworkAccessError(f"a test tried to connect to {address}")

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            check(address)
        return real_connect(sock, address)

    def create_connection(address, *args, **kwargs):
        check(address)
        return real_create(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)


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
    from zeroseg.training.loop import train

    run = tmp_path_factory.mktemp("run")
    config = load_config(
        "tiny", [f"data.root={image_folder}", "train.steps=6", "train.checkpoint_every=3"]
    )
    train(config, run, progress=False)
    return run


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
