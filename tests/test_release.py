"""Release format: export -> from_pretrained gives bit-identical predictions; bad releases are
one-line errors; a Hub id offline says so."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from zeroseg import InferenceConfig, Segmenter
from zeroseg.cli import main
from zeroseg.errors import ZeroSegError
from zeroseg.inference.release import export_release, load_release


@pytest.fixture(scope="module")
def release(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    return export_release(tiny_run, out, inference={"templates": "simple1"})


def test_release_holds_the_student_only(release):
    from safetensors.torch import load_file

    assert sorted(p.name for p in release.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    keys = load_file(str(release / "model.safetensors")).keys()
    assert any(k.startswith("encoder.") for k in keys) and any(
        k.startswith("seg_head.") for k in keys
    )
    assert not any(k.startswith("decoder.") or "optim" in k for k in keys)
    meta = json.loads((release / "config.json").read_text())
    assert meta["teacher"]["model"] == "tiny-random-clip" and meta["text_tower"] == "teacher"
    assert meta["training"]["step"] == 6 and meta["inference"] == {"templates": "simple1"}
    assert "6 optimiser steps" in (release / "README.md").read_text()


def test_export_then_load_is_bit_identical(tiny_run, release):
    image = torch.rand(3, 57, 83, generator=torch.Generator().manual_seed(1))
    config = InferenceConfig(templates="simple1")
    classes = ["red", ["green", "lime"], "blue sky"]
    for mode in ("whole", "slide"):
        outputs = []
        for source in (
            Segmenter.from_checkpoint(tiny_run, config),
            Segmenter.from_pretrained(release),
        ):
            seg = source.with_config(mode=mode)
            seg.set_vocabulary(classes, background=True)
            outputs.append(seg.predict(image))
        assert torch.equal(outputs[0].labels, outputs[1].labels)
        assert torch.equal(outputs[0].scores, outputs[1].scores)


def test_release_defaults_reach_the_segmenter(release):
    assert Segmenter.from_pretrained(release).config.templates == "simple1"
    assert Segmenter.from_checkpoint(release).config.templates == "simple1"  # same entry point


def test_export_cli_and_segment_with_a_release(tmp_path, tiny_run, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"dataset": "voc", "protocol": "zeroseg", "miou": 12.5}))
    out = tmp_path / "rel"
    assert main(["export", str(tiny_run), "--out", str(out), "--results", str(results),
                 "--set", "mode=slide"]) == 0  # fmt: skip
    assert "| voc zeroseg | 12.50 |" in (out / "README.md").read_text()
    image = tmp_path / "x.png"
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(image)
    seg = tmp_path / "seg"
    assert main(["segment", str(image), "--checkpoint", str(out), "--classes", "a, b",
                 "--out", str(seg), "--no-progress"]) == 0  # fmt: skip
    assert Image.open(seg / "x.png").size == (50, 40)


def test_bad_releases_are_one_line_errors(tmp_path, release):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(release, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ZeroSegError, match="cannot read"):
        load_release(broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ZeroSegError, match="no model.safetensors"):
        load_release(broken)
    meta = json.loads((release / "config.json").read_text())
    meta["experiment"]["seg_head"]["width"] = 32
    other = tmp_path / "other"
    shutil.copytree(release, other)
    (other / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ZeroSegError, match="does not match its config.json"):
        load_release(other)
    with pytest.raises(ZeroSegError, match="not a zeroseg release"):
        load_release(tmp_path)
    with pytest.raises(ZeroSegError, match="does not exist"):
        load_release(tmp_path / "nowhere" / "deeper")


def test_hub_id_offline_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ZeroSegError, match="Hub is offline") as info:
        Segmenter.from_pretrained("someone/zeroseg-model-that-is-not-cached")
    assert "\n" not in str(info.value)


def test_teacher_file_is_checked_against_the_recorded_hash(tmp_path, tiny_run):
    from safetensors.torch import save_file

    from zeroseg.config import to_dict
    from zeroseg.runtime.weights_file import file_sha256

    meta_path = export_release(tiny_run, tmp_path / "rel") / "config.json"
    weights = tmp_path / "teacher.safetensors"
    save_file({"w": torch.zeros(3)}, str(weights))
    meta = json.loads(meta_path.read_text())
    meta["teacher"]["weights_sha256"] = "0" * 64
    meta["experiment"]["teacher"]["pretrained"] = str(weights)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ZeroSegError, match="differ from the ones this model was trained with"):
        load_release(meta_path.parent)
    with pytest.raises(ZeroSegError, match="not on this machine"):
        load_release(meta_path.parent, teacher_pretrained=str(tmp_path / "moved.safetensors"))
    meta["teacher"]["weights_sha256"] = file_sha256(weights)
    meta_path.write_text(json.dumps(meta))
    assert load_release(meta_path.parent).teacher.pretrained == str(weights)
    assert to_dict(load_release(meta_path.parent).experiment)["teacher"]["pretrained"] == str(
        weights
    )
