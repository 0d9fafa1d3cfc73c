import json

import numpy as np
import pytest
import torch

from zeroseg.config import load_config
from zeroseg.data.images import ImageFolder
from zeroseg.data.teacher_cache import cache_identity, cached_dataset, open_cache
from zeroseg.errors import ZeroSegError
from zeroseg.models.teacher import build_teacher
from zeroseg.runtime.distributed import DistInfo
from zeroseg.training.loop import train


def test_cache_holds_the_online_views_and_is_checked(tmp_path, image_folder):
    cache = tmp_path / "cache"
    config = load_config("tiny", [f"data.root={image_folder}", f"data.teacher_cache={cache}"])
    dataset = ImageFolder(image_folder, 64, config.data.resize_short)
    teacher = build_teacher(config.teacher)
    paired = cached_dataset(config, dataset, teacher, torch.device("cpu"), DistInfo(), False)
    assert json.loads((cache / "meta.json").read_text())["complete"] is True
    image, views = paired[5]
    online = teacher.encode_views(image.unsqueeze(0))[0]
    assert views.shape == (30, 64)
    assert torch.allclose(views, online, atol=2e-3 * online.abs().max())
    other = load_config("tiny", [f"data.teacher_cache={cache}", "teacher.grids=[1,3]"])
    with pytest.raises(ZeroSegError, match="stale: grids"):
        open_cache(cache, cache_identity(other, dataset))


def test_training_from_the_cache_reuses_it(tmp_path, image_folder, monkeypatch):
    import zeroseg.data.teacher_cache as teacher_cache

    cache = tmp_path / "cache"
    overrides = [f"data.root={image_folder}", f"data.teacher_cache={cache}", "train.steps=3"]
    result = train(load_config("tiny", overrides), tmp_path / "run", progress=False)
    assert np.load(cache / "views-00000.npy", mmap_mode="r").shape == (32, 30, 64)
    assert result.history[-1]["loss"] > 0
    stamp = (cache / "views-00000.npy").stat().st_mtime_ns

    def no_recompute(*args, **kwargs):
        raise AssertionError("the cache was recomputed")

    monkeypatch.setattr(teacher_cache, "fill_cache", no_recompute)
    again = train(load_config("tiny", overrides), tmp_path / "run2", progress=False)
    assert (cache / "views-00000.npy").stat().st_mtime_ns == stamp
    assert [r["loss"] for r in again.history] == [r["loss"] for r in result.history]


def test_a_teacher_checkpoint_rewritten_in_place_changes_the_identity(tmp_path, image_folder):
    import os

    weights = tmp_path / "teacher.pt"
    weights.write_bytes(b"first")
    config = load_config("tiny", [f"teacher.pretrained={weights}"])
    dataset = ImageFolder(image_folder, 64, config.data.resize_short)
    before = cache_identity(config, dataset)
    weights.write_bytes(b"second, retrained")
    os.utime(weights, ns=(1, 1))
    assert cache_identity(config, dataset)["teacher_weights"] != before["teacher_weights"]
    assert cache_identity(load_config("tiny"), dataset)["teacher_weights"] is None  # no file


def test_a_corrupt_cache_is_refused(tmp_path, image_folder):
    cache = tmp_path / "cache"
    config = load_config("tiny", [f"data.root={image_folder}", f"data.teacher_cache={cache}"])
    dataset = ImageFolder(image_folder, 64, config.data.resize_short)
    teacher = build_teacher(config.teacher)
    cached_dataset(config, dataset, teacher, torch.device("cpu"), DistInfo(), False)
    identity = cache_identity(config, dataset)
    views = cache / "views-00000.npy"
    data = bytearray(views.read_bytes())
    data[-100] ^= 0x40  # one flipped bit among the stored views
    views.write_bytes(bytes(data))
    with pytest.raises(ZeroSegError, match="corrupt: views-00000.npy differs"):
        open_cache(cache, identity)
    views.write_bytes(bytes(data[:-64]))
    with pytest.raises(ZeroSegError, match="corrupt: views-00000.npy is"):
        open_cache(cache, identity)


def test_an_interrupted_fill_keeps_its_finished_chunks(tmp_path, image_folder, monkeypatch):
    import zeroseg.data.teacher_cache as teacher_cache

    config = load_config("tiny", [f"data.root={image_folder}"])
    dataset = ImageFolder(image_folder, 64, config.data.resize_short)
    teacher = build_teacher(config.teacher)
    cpu, info = torch.device("cpu"), DistInfo()
    straight = tmp_path / "straight"
    identity = cache_identity(config, dataset, chunk_rows=10)
    expected = teacher_cache.fill_cache(
        straight, identity, dataset, teacher, cpu, info, 8, 0, False
    )

    cache, real_save, saved = tmp_path / "cache", teacher_cache._save_npy, []

    def killed_after_two(path, array):
        if len(saved) == 2:
            raise KeyboardInterrupt  # stands in for a kill during the third chunk
        saved.append(path.name)
        return real_save(path, array)

    monkeypatch.setattr(teacher_cache, "_save_npy", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        teacher_cache.fill_cache(cache, identity, dataset, teacher, cpu, info, 8, 0, False)
    assert saved == ["views-00000.npy", "views-00001.npy"]
    assert not (cache / "meta.json").exists() and not list(cache.glob("*.tmp"))
    stamps = {name: (cache / name).stat().st_mtime_ns for name in saved}
    monkeypatch.setattr(teacher_cache, "_save_npy", real_save)
    resumed = teacher_cache.fill_cache(cache, identity, dataset, teacher, cpu, info, 8, 0, False)
    assert {name: (cache / name).stat().st_mtime_ns for name in saved} == stamps  # not rewritten
    assert len(resumed) == len(expected) == 32
    assert all(np.array_equal(resumed[i], expected[i]) for i in range(32))
    other = cache_identity(load_config("tiny", ["teacher.grids=[1,3]"]), dataset, chunk_rows=10)
    with pytest.raises(ZeroSegError, match="another job: grids"):
        teacher_cache.fill_cache(cache, other, dataset, teacher, cpu, info, 8, 0, False)
