"""A full disk (``OSError(ENOSPC)`` injected in the atomic writers): the previous good file is left
intact, no temporary file stays, and the command stops with one line naming the path."""

from __future__ import annotations

import errno
import os
import shutil

import pytest
from test_segmentation_data import make_masks, write_voc_tree

from zeroseg.cli import main
from zeroseg.errors import ZeroSegError
from zeroseg.runtime.atomic import atomic_write_text
from zeroseg.training import checkpoint as ckpt


@pytest.fixture
def disk_full(monkeypatch):
    """``full(name)``: from now on, writing a file whose name contains ``name`` fails with ENOSPC
    (at the atomic writer's fsync of its temporary file, where a real full disk shows)."""
    real_fsync = os.fsync
    names: list[str] = []

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if any(name in os.path.basename(target) for name in names):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return names.append


def _one_line(capsys, argv, name: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("zeroseg: error: cannot write ") and name in last
    assert "No space left on device" in last
    return last


def test_the_writer_keeps_the_old_file(tmp_path, disk_full):
    target = tmp_path / "results.json"
    target.write_text("old")
    disk_full("results.json")
    with pytest.raises(ZeroSegError, match="previous file is unchanged"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]


def test_a_checkpoint_on_a_full_disk(tmp_path, tiny_run, image_folder, disk_full, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    disk_full("step_0000007")
    argv = ["train", "--data", str(image_folder), "--out", str(run), "--steps", "7", "--resume",
            "--no-progress", "train.checkpoint_every=3"]  # fmt: skip
    _one_line(capsys, argv, "step_0000007.pt")
    after = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    assert after == before  # the good checkpoints intact, no temporary file
    ckpt.load_checkpoint(ckpt.latest_checkpoint(run))  # its checksum still matches


def test_a_cache_chunk_on_a_full_disk(tmp_path, image_folder, disk_full, capsys):
    cache = tmp_path / "cache"
    argv = ["cache-teacher", "--data", str(image_folder), "--cache", str(cache),
            "--chunk-rows", "16", "--no-progress"]  # fmt: skip
    disk_full("views-00001.npy")
    _one_line(capsys, argv, "views-00001.npy")
    assert (cache / "views-00000.done.json").is_file() and not list(cache.glob(".*.tmp"))
    assert not (cache / "views-00001.npy").exists() and not (cache / "meta.json").exists()


def test_a_pack_shard_on_a_full_disk(tmp_path, image_folder, disk_full, capsys):
    out = tmp_path / "pack"
    argv = ["pack", "--data", str(image_folder), "--out", str(out), "--shard-size", "10",
            "--no-progress"]  # fmt: skip
    disk_full("shard-000002.tar")
    _one_line(capsys, argv, "shard-000002.tar")
    assert (out / "shard-000001.done.json").is_file() and not list(out.glob(".*.tmp"))
    assert not (out / "manifest.json").exists()


def test_results_on_a_full_disk(tmp_path, tiny_run, disk_full, capsys):
    root = tmp_path / "voc"
    write_voc_tree(root, make_masks(2, 21, size=(24, 32)))
    out = tmp_path / "out"
    argv = ["evaluate", "--checkpoint", str(tiny_run), "--dataset", "voc", "--data-root",
            str(root), "--out", str(out), "--no-progress", "short_side=32", "window=32",
            "stride=16", "templates=simple1"]  # fmt: skip
    assert main(argv) == 0
    old = (out / "results.json").read_bytes()
    disk_full("results.json")
    _one_line(capsys, argv, "results.json")
    assert (out / "results.json").read_bytes() == old and not list(out.glob(".*.tmp"))
