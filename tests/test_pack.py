"""zeroseg pack: WebDataset shards of training crops (and teacher views), read back for training."""

import io
import json
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from zeroseg.cli import main
from zeroseg.config import load_config
from zeroseg.data import pack as pack_module
from zeroseg.data.images import ImageFolder
from zeroseg.data.pack import PackOptions, pack
from zeroseg.data.shard_stream import ShardStream, delivered_per_worker
from zeroseg.errors import ZeroSegError
from zeroseg.models.teacher import build_teacher
from zeroseg.training.loop import train

RAW = PackOptions(shard_size=5, encoding="raw", views=True)


@pytest.fixture(scope="module")
def packed(tmp_path_factory, image_folder):
    out = tmp_path_factory.mktemp("pack") / "shards"
    pack(load_config("tiny", [f"data.root={image_folder}"]), out, RAW, progress=False)
    return out


def test_a_pack_holds_the_crops_and_views_the_student_would_see(packed, image_folder):
    import webdataset

    manifest = json.loads((packed / "manifest.json").read_text())
    assert manifest["total"] == 32 and len(manifest["shards"]) == 7
    config = load_config("tiny")
    images = ImageFolder(image_folder, 64, config.data.resize_short)
    teacher = build_teacher(config.teacher)
    records = list(
        webdataset.WebDataset(str(packed / "shard-{000000..000006}.tar"), shardshuffle=False)
    )
    assert len(records) == 32  # a standard WebDataset reader reads the pack
    for record in records[:4]:
        index = int(record["__key__"])
        assert record["name.txt"].decode() == str(images.files[index].relative_to(image_folder))
        crop = torch.from_numpy(np.load(io.BytesIO(record["image.npy"])))
        assert torch.equal(crop.permute(2, 0, 1).float() / 255, images[index])
        views = np.load(io.BytesIO(record["views.npy"]))
        online = teacher.encode_views(images[index][None])[0]
        assert views.dtype == np.float16 and views.shape == (30, 64)
        assert torch.allclose(
            torch.from_numpy(views).float(), online, atol=2e-3 * online.abs().max()
        )


def test_ranks_see_disjoint_shards_reshuffled_every_epoch(packed):
    ranks = [ShardStream(str(packed), 4, rank, 2, seed=3) for rank in range(2)]
    first = [set(stream.keys(0)) for stream in ranks]
    assert not first[0] & first[1]
    assert ranks[0].keys(0) != ranks[0].keys(1)  # another order (and other shards) next epoch
    assert ShardStream(str(packed), 4, 0, 2, seed=3).keys(0) == ranks[0].keys(0)  # from the seed


def test_resuming_mid_epoch_with_workers_reads_what_an_unbroken_run_reads(packed):
    from zeroseg.data.training_data import TrainingData

    def stream_batches(consumed, count):
        stream = ShardStream(str(packed), 2, 0, 1, num_workers=2, seed=1, with_views=True)
        loader = DataLoader(stream, batch_size=2, num_workers=2, drop_last=True)
        data = TrainingData(stream.num_images, loader, stream)
        batches = data.batches(consumed)
        return [next(batches)[0] for _ in range(count)]

    unbroken = stream_batches(0, 40)  # over two epochs (15 batches each: shards 5, 5, 5, 2...)
    for consumed in (3, 14, 16, 29):
        resumed = stream_batches(consumed, 40 - consumed)
        assert all(torch.equal(a, b) for a, b in zip(resumed, unbroken[consumed:]))


def test_delivered_per_worker_follows_the_dataloaders_round_robin():
    assert delivered_per_worker([2, 5, 3], 0) == ([0, 0, 0], 0)
    assert delivered_per_worker([2, 5, 3], 4) == ([2, 1, 1], 1)
    assert delivered_per_worker([2, 5, 3], 7) == ([2, 3, 2], 2)  # worker 0 ran out
    assert delivered_per_worker([2, 5, 3], 10) == ([2, 5, 3], 2)
    with pytest.raises(ValueError):
        delivered_per_worker([1], 2)


def test_training_from_a_pack_with_views_equals_the_teacher_online(tmp_path, packed):
    with_views = train(load_config("tiny", [f"data.shards={packed}", "train.steps=2"]),
                       tmp_path / "a", progress=False)  # fmt: skip
    plain = tmp_path / "plain"
    shutil.copytree(packed, plain)
    manifest = json.loads((plain / "manifest.json").read_text())
    (plain / "manifest.json").write_text(json.dumps({**manifest, "views": None}))
    online = train(load_config("tiny", [f"data.shards={plain}", "train.steps=2"]),
                   tmp_path / "b", progress=False)  # fmt: skip
    for a, b in zip(with_views.history, online.history):
        assert abs(a["loss"] - b["loss"]) < 2e-3 * abs(b["loss"])


def test_a_pack_for_another_run_is_refused(tmp_path, packed):
    other_teacher = load_config("tiny", [f"data.shards={packed}", "teacher.grids=[1,3]"])
    with pytest.raises(ZeroSegError, match="views of another teacher: grids"):
        train(other_teacher, tmp_path / "a", progress=False)
    other_size = load_config("tiny", [f"data.shards={packed}", "encoder.image_size=32"])
    with pytest.raises(ZeroSegError, match="holds 64px crops"):
        train(other_size, tmp_path / "b", progress=False)
    with pytest.raises(ZeroSegError, match="no packed shards at"):
        ShardStream(str(tmp_path / "nowhere"), 4)


def test_a_shard_with_flipped_bytes_is_refused_in_one_line(tmp_path, packed, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(packed, broken)
    for shard in broken.glob("*.tar"):
        data = bytearray(shard.read_bytes())
        data[700] ^= 0x01
        shard.write_bytes(bytes(data))
    code = main(["train", "--out", str(tmp_path / "run"), "--steps", "1", "--no-progress",
                 f"data.shards={broken}", "data.num_workers=1"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "is corrupt" in err and "shard-0000" in err and "Traceback" not in err


def test_an_interrupted_pack_keeps_its_finished_shards(tmp_path, image_folder, monkeypatch):
    config = load_config("tiny", [f"data.root={image_folder}"])
    options = PackOptions(shard_size=8, quality=90)
    straight = pack(config, tmp_path / "straight", options, progress=False)
    real, written = pack_module.atomic_write_bytes, []

    def killed_after_two(path, data):
        if len(written) == 2:
            raise KeyboardInterrupt  # stands in for a kill while packing the third shard
        written.append(path.name)
        return real(path, data)

    monkeypatch.setattr(pack_module, "atomic_write_bytes", killed_after_two)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        pack(config, out, options, progress=False)
    stamps = {name: (out / name).stat().st_mtime_ns for name in written}
    monkeypatch.setattr(pack_module, "atomic_write_bytes", real)
    resumed = pack(config, out, options, progress=False)
    assert {name: (out / name).stat().st_mtime_ns for name in written} == stamps
    assert resumed["shards"] == straight["shards"]  # byte-identical shards
    with pytest.raises(ZeroSegError, match="another job: quality"):
        pack(config, out, PackOptions(shard_size=8, quality=80), progress=False)


def test_unreadable_images_are_skipped_and_listed(tmp_path, image_folder):
    folder = tmp_path / "images"
    shutil.copytree(image_folder, folder)
    (folder / "broken.png").write_bytes(b"not a png")
    config = load_config("tiny", [f"data.root={folder}"])
    manifest = pack(config, tmp_path / "out", PackOptions(shard_size=10), progress=False)
    assert manifest["total"] == 32 and manifest["skipped"] == [str(folder / "broken.png")]


def test_an_image_list_packs_the_files_it_names(tmp_path, image_folder):
    names = sorted(str(p.relative_to(image_folder)) for p in image_folder.rglob("*.png"))[:6]
    listing = tmp_path / "train.txt"
    listing.write_text("# six images\n" + "".join(f"{image_folder}/{n}\n" for n in names))
    code = main(["pack", "--data", str(listing), "--out", str(tmp_path / "out"), "--no-progress"])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert code == 0 and manifest["total"] == 6 and len(manifest["shards"]) == 1


def test_a_pack_is_read_from_webdataset_urls(packed):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(packed))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        locations = [f"pipe:cat {packed}/{{name}}", f"file://{packed}"]
        if shutil.which("curl"):  # WebDataset opens http URLs with curl
            locations.append(f"http://127.0.0.1:{server.server_port}")
        expected = ShardStream(str(packed), 4, seed=2).keys(0)
        for location in locations:
            assert ShardStream(location, 4, seed=2).keys(0) == expected, location
    finally:
        server.shutdown()
