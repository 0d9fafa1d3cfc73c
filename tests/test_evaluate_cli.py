"""`zeroseg evaluate` end to end on a fake VOC tree with the tiny run's checkpoint."""

import json

import numpy as np
import pytest
from PIL import Image
from test_segmentation_data import make_masks, write_voc_tree

from zeroseg.benchmark.metrics import ConfusionMatrix
from zeroseg.cli import main


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("voc")
    write_voc_tree(base, make_masks(3, 21, size=(40, 56)))
    return base


def test_evaluate_writes_results_and_reproducible_predictions(tmp_path, tiny_run, voc_root):
    out, preds = tmp_path / "out", tmp_path / "preds"
    code = main(["evaluate", "--checkpoint", str(tiny_run), "--dataset", "voc", "--data-root",
                 str(voc_root), "--out", str(out), "--save-predictions", str(preds),
                 "--no-progress", "short_side=64", "window=64", "stride=32",
                 "templates=simple1"])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["per_class"]) == 21 and "aeroplane" in results["per_class"]
    assert results["settings"]["protocol"] == "zeroseg"
    inference = results["settings"]["inference"]  # the protocol with the overrides, resolved
    assert (inference["short_side"], inference["window"], inference["stride"]) == (64, 64, 32)
    assert inference["top_k_classes"] == 5 and inference["resize"] == "mmcv"
    assert len(results["settings"]["checkpoint_sha256"]) == 64
    assert (out / "results.md").read_text().count("|") > 21
    matrix = ConfusionMatrix(21)
    root = voc_root / "VOCdevkit" / "VOC2012"
    import torch

    for name in (root / "ImageSets/Segmentation/val.txt").read_text().split():
        pred = np.asarray(Image.open(preds / f"{name}.png"))
        label = np.asarray(Image.open(root / "SegmentationClass" / f"{name}.png"))
        assert pred.shape == label.shape
        matrix.update(
            torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(label.astype(np.int64))
        )
    assert matrix.summary(list(results["per_class"]))["miou"] == pytest.approx(
        results["miou"], abs=1e-6
    )


@pytest.mark.parametrize("method", ["sclip", "clearclip", "naclip", "maskclip"])
def test_evaluate_training_free_readouts_bring_their_protocol(tmp_path, tiny_run, voc_root, method):
    """``--method M`` alone runs protocol M; an explicit ``--protocol`` wins; both recorded."""
    args = ["evaluate", "--checkpoint", str(tiny_run), "--method", method, "--dataset", "voc",
            "--data-root", str(voc_root), "--out", str(tmp_path / "o"), "--no-progress",
            "short_side=32", "window=32", "stride=16", "templates=simple1"]  # fmt: skip
    assert main(args) == 0
    settings = json.loads((tmp_path / "o" / "results.json").read_text())["settings"]
    assert settings["method"] == method and settings["protocol"] == method
    assert settings["protocol_from"] == "the method's default"
    assert settings["inference"]["merge"] == "logits"
    assert (settings["inference"]["pamr_steps"] == 10) is (method == "naclip")
    assert main([*args, "--protocol", "zeroseg"]) == 0
    settings = json.loads((tmp_path / "o" / "results.json").read_text())["settings"]
    assert (settings["method"], settings["protocol"]) == (method, "zeroseg")
    assert settings["protocol_from"] == "--protocol"
    assert settings["inference"]["top_k_classes"] == 5


def test_evaluate_teacher_dense_baseline(tmp_path, tiny_run, voc_root):
    code = main(["evaluate", "--checkpoint", str(tiny_run), "--method", "teacher-dense",
                 "--dataset", "voc20", "--data-root", str(voc_root), "--out", str(tmp_path / "o"),
                 "--no-progress", "short_side=32", "window=32", "stride=16"])  # fmt: skip
    assert code == 0
    assert (
        json.loads((tmp_path / "o" / "results.json").read_text())["settings"]["method"]
        == "teacher-dense"
    )


def test_wrong_root_and_missing_split(tmp_path, tiny_run, voc_root, capsys):
    args = ["evaluate", "--checkpoint", str(tiny_run), "--dataset", "voc", "--out", str(tmp_path)]
    assert main([*args, "--data-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and "\n" not in err
    (voc_root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").rename(tmp_path / "val.txt")
    try:
        assert main([*args, "--data-root", str(voc_root)]) == 2
        assert "val.txt" in capsys.readouterr().err
    finally:
        (tmp_path / "val.txt").rename(voc_root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt")


def test_evaluate_refuses_an_override_of_the_wrong_type(tmp_path, tiny_run, voc_root, capsys):
    args = ["evaluate", "--checkpoint", str(tiny_run), "--dataset", "voc", "--data-root",
            str(voc_root), "--out", str(tmp_path / "o")]  # fmt: skip
    for override, named in (
        ("bg_threshold=high", "bg_threshold"),
        ("window=-3", "window"),
        ("no_such_field=1", "no_such_field"),
        ("mode=zoom", "mode"),
    ):
        assert main([*args, override]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("zeroseg: error:") and "\n" not in err and named in err, err
    assert not (tmp_path / "o").exists()


def test_evaluate_protocol_flag(tmp_path, tiny_run, voc_root, capsys):
    args = ["evaluate", "--checkpoint", str(tiny_run), "--dataset", "voc20", "--data-root",
            str(voc_root), "--out", str(tmp_path / "o"), "--no-progress", "--protocol", "sclip",
            "short_side=32", "window=32", "stride=16"]  # fmt: skip
    assert main(args) == 0
    settings = json.loads((tmp_path / "o" / "results.json").read_text())["settings"]
    assert settings["protocol"] == "sclip" and settings["inference"]["logit_scale"] == 40.0
    with pytest.raises(SystemExit):
        main([*args[:-4], "--preset", "zeroseg"])  # --preset belongs to train, not evaluate
