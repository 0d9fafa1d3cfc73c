"""``zeroseg evaluate`` over a long list resumes: a run interrupted after k images and rerun gives
the numbers of one uninterrupted pass, evaluating only the images not in an intact part."""

from __future__ import annotations

import json

import pytest
from test_segmentation_data import make_masks, write_voc_tree

import zeroseg.benchmark.evaluation as evaluation
from zeroseg.cli import main

REAL_PREDICT = evaluation._predict_labels


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("voc")
    write_voc_tree(base, make_masks(7, 21, size=(24, 32)))
    return base


def _argv(tiny_run, voc_root, out, *extra):
    return ["evaluate", "--checkpoint", str(tiny_run), "--dataset", "voc", "--data-root",
            str(voc_root), "--out", str(out), "--no-progress", "short_side=32", "window=32",
            "stride=16", "templates=simple1", *extra]  # fmt: skip


def _numbers(out):
    results = json.loads((out / "results.json").read_text())
    return {k: results[k] for k in ("miou", "aacc", "macc", "per_class", "num_pixels")}


def _counting(monkeypatch, fail_after=None):
    real, calls = REAL_PREDICT, []

    def predict(*args, **kwargs):
        if fail_after is not None and len(calls) == fail_after:
            raise KeyboardInterrupt  # as a kill would stop it
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "_predict_labels", predict)
    return calls


def test_an_interrupted_evaluation_finishes_the_rest_with_the_same_numbers(
    tmp_path, tiny_run, voc_root, monkeypatch, capsys
):
    monkeypatch.setattr(evaluation, "PART_SIZE", 2)
    assert main(_argv(tiny_run, voc_root, tmp_path / "straight")) == 0
    straight = _numbers(tmp_path / "straight")
    out = tmp_path / "out"
    _counting(monkeypatch, fail_after=5)
    assert main(_argv(tiny_run, voc_root, out)) == 130  # interrupted in the third part
    parts = sorted(p.name for p in (out / "parts").iterdir())
    assert parts == ["job.json", "rank0-part00000.json", "rank0-part00001.json"]
    calls = _counting(monkeypatch)
    assert main(_argv(tiny_run, voc_root, out)) == 0
    assert len(calls) == 3  # 7 images, 4 of them in the two intact parts
    assert _numbers(out) == straight
    assert not (out / "parts").exists()


def test_a_damaged_part_is_evaluated_again_and_other_settings_are_refused(
    tmp_path, tiny_run, voc_root, monkeypatch, capsys
):
    monkeypatch.setattr(evaluation, "PART_SIZE", 3)
    out = tmp_path / "out"
    _counting(monkeypatch, fail_after=6)
    assert main(_argv(tiny_run, voc_root, out)) == 130
    part = out / "parts" / "rank0-part00000.json"
    record = json.loads(part.read_text())
    record["matrix"][0][0] += 1
    part.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(_argv(tiny_run, voc_root, out, "bg_threshold=0.5")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings" in err and "bg_threshold" in err
    calls = _counting(monkeypatch)
    assert main(_argv(tiny_run, voc_root, out)) == 0
    assert len(calls) == 4  # the damaged part (3 images) and the last image
