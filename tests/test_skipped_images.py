"""Unreadable training images are skipped, counted and listed, the same way after a resume; a run
stops in one line only past ``data.max_bad_images`` (folder, teacher cache and pack alike)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from zeroseg.cli import main
from zeroseg.config import load_config
from zeroseg.data.images import ImageFolder, SkipUnreadable
from zeroseg.data.pack import PackOptions, pack
from zeroseg.errors import ZeroSegError
from zeroseg.training import checkpoint as ckpt
from zeroseg.training.loop import train


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory, image_folder):
    """The 32 good images and two bad ones: a corrupt PNG and a decompression bomb."""
    folder = tmp_path_factory.mktemp("broken") / "images"
    shutil.copytree(image_folder, folder)
    (folder / "class_0" / "img_005b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("1", (12000, 12000)).save(folder / "class_1" / "img_020b.png")
    return folder


BAD = ("img_005b.png", "img_020b.png")


def test_an_unreadable_image_stands_in_for_the_next_readable_one(broken_folder):
    images = ImageFolder(broken_folder, 64, 64)
    readable = SkipUnreadable(images, limit=5)
    bad = [i for i, f in enumerate(images.files) if f.name in BAD]
    image, index, error = readable[bad[0]]
    assert index == bad[0] and "img_005b.png" in error
    assert torch.equal(image, images[bad[0] + 1])
    image, index, error = readable[0]
    assert index == -1 and error == "" and torch.equal(image, images[0])
    with pytest.raises(ZeroSegError, match="max_bad_images=0"):
        SkipUnreadable(images, limit=0)[bad[0]]


def test_training_skips_and_lists_bad_images_and_resumes_exactly(tmp_path, broken_folder):
    base = [f"data.root={broken_folder}", "train.checkpoint_every=1", "train.steps=4",
            "data.num_workers=0", "train.keep_checkpoints=0"]  # fmt: skip
    straight = train(load_config("tiny", base), tmp_path / "a", progress=False)
    listed = json.loads((tmp_path / "a" / "skipped_images.json").read_text())
    assert listed["count"] == 2 and listed["limit"] == 100
    assert sorted(p["path"].rsplit("/", 1)[-1] for p in listed["images"]) == list(BAD)
    assert all(p["error"] for p in listed["images"])
    run = tmp_path / "b"
    train(load_config("tiny", base), run, progress=False)
    for path in ckpt.list_checkpoints(run)[2:]:  # as if killed after step 2
        path.unlink()
        ckpt.checksum_path(path).unlink()
    resumed = train(load_config("tiny", base), run, resume=True, progress=False)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history[2:]]
    a, b = ckpt.load_checkpoint(tmp_path / "a"), ckpt.load_checkpoint(run)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert json.loads((run / "skipped_images.json").read_text())["count"] == 2


def test_past_the_limit_a_run_stops_in_one_line_and_writes_no_config(
    tmp_path, image_folder, capsys
):
    """Half the images are corrupt: the first step meets more than the limit."""
    folder = tmp_path / "images"
    shutil.copytree(image_folder, folder)
    for path in list(folder.rglob("*.png")):
        path.with_name("bad_" + path.name).write_bytes(path.read_bytes()[:60])
    out = tmp_path / "run"
    argv = ["train", "--data", str(folder), "--out", str(out), "--steps", "4",
            "--no-progress", "data.max_bad_images=2", "data.num_workers=1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("zeroseg: error: ") and "max_bad_images=2" in err
    assert not out.exists() or [p.name for p in out.iterdir()] == ["skipped_images.json"]


def test_the_teacher_cache_skips_and_lists_bad_images(tmp_path, broken_folder, capsys):
    cache = tmp_path / "cache"
    argv = ["cache-teacher", "--data", str(broken_folder), "--cache", str(cache),
            "--chunk-rows", "16", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    meta = json.loads((cache / "meta.json").read_text())
    assert sorted(p.rsplit("/", 1)[-1] for p in meta["skipped"]) == list(BAD)
    images = ImageFolder(broken_folder, 64, 256)
    rows = np.concatenate([np.load(p) for p in sorted(cache.glob("views-*.npy"))])
    for index, path in enumerate(images.files):
        assert (not rows[index].any()) == (path.name in BAD)
    assert main([*argv[:-1], "--cache", str(tmp_path / "c2"), "data.max_bad_images=1"]) == 2
    assert "max_bad_images=1" in capsys.readouterr().err


def test_pack_stops_past_the_limit(tmp_path, broken_folder):
    config = load_config("tiny", [f"data.root={broken_folder}", "data.max_bad_images=1"])
    with pytest.raises(ZeroSegError, match="2 unreadable images, over data.max_bad_images=1"):
        pack(config, tmp_path / "out", PackOptions(shard_size=40), progress=False)
