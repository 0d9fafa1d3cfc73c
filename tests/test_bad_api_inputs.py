"""The last crashes on bad input (issue 23): devices, run folders, class lists, images, epochs.

Each is a one-line ``ZeroSegError`` (``zeroseg: error: ...`` and exit 2 on the command line), and
nothing is written where nothing could be done.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zeroseg import Segmenter
from zeroseg.cli import main
from zeroseg.errors import ZeroSegError


@pytest.fixture(scope="module")
def segmenter(tiny_run):
    model = Segmenter.from_checkpoint(tiny_run, device="cpu")
    model.set_vocabulary(["red", "green"])
    return model


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("zeroseg: error: ")
    return err


@pytest.mark.parametrize("device", ["bogus", "cuda:7", "tpu"])
def test_segment_refuses_a_device_that_is_not_here(tiny_run, tmp_path, capsys, device):
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    argv = ["segment", str(image), "--checkpoint", str(tiny_run), "--classes", "a, b",
            "--out", str(tmp_path / "out"), "--device", device, "--no-progress"]  # fmt: skip
    assert device in _one_line_error(capsys, argv)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_segment_refuses_cuda_without_a_gpu(tiny_run, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    argv = ["segment", str(image), "--checkpoint", str(tiny_run), "--classes", "a",
            "--out", str(tmp_path / "out"), "--device", "cuda", "--no-progress"]  # fmt: skip
    assert "0 CUDA devices" in _one_line_error(capsys, argv)


def test_train_refuses_an_out_folder_that_cannot_be_made(image_folder, capsys):
    argv = ["train", "--data", str(image_folder), "--out", "/proc/zeroseg/run", "--steps", "1",
            "--no-progress"]  # fmt: skip
    assert "/proc/zeroseg/run" in _one_line_error(capsys, argv)


def test_train_refuses_zero_epochs_without_steps(image_folder, tmp_path, capsys):
    argv = ["train", "--data", str(image_folder), "--out", str(tmp_path / "run"),
            "--no-progress", "optim.epochs=0"]  # fmt: skip
    assert "nothing to train" in _one_line_error(capsys, argv)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "names",
    [5, "cat, dog", b"cat", None, [1, 2], ["cat", 3], [["cat", None]], [], [[]], [""], {"a": 1}],
    ids=["int", "str", "bytes", "none", "ints", "mixed", "synonym none", "empty", "empty entry",
         "empty name", "dict"],
)  # fmt: skip
def test_set_vocabulary_refuses_wrong_types(segmenter, names):
    with pytest.raises(ZeroSegError) as caught:
        segmenter.with_config().set_vocabulary(names)
    assert "\n" not in str(caught.value)


def test_set_vocabulary_accepts_lists_and_tuples(segmenter):
    other = segmenter.with_config()
    other.set_vocabulary(("cat", ["dog", "puppy"], ("sky", "clouds")))
    assert other.vocabulary.names == ["cat", "dog", "sky"]


GOOD = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "image, words",
    [
        (torch.zeros(3, 0, 5), "no pixels"),
        (torch.zeros(3, 5, 0), "no pixels"),
        (GOOD.clone().index_put_((torch.tensor([0]),), torch.tensor(float("nan"))), "NaN"),
        (torch.full((3, 4, 4), float("inf")), "NaN or infinite"),
        ((GOOD * 255).to(torch.uint8), "image.float() / 255"),
        (torch.ones(3, 4, 4, dtype=torch.int64), "float"),
        (torch.ones(3, 4, 4, dtype=torch.bool), "float"),
        ((GOOD - 0.45) / 0.25, "[0, 1]"),
        (GOOD * 255, "[0, 1]"),
        (torch.rand(4, 8, 8), "(3, H, W)"),
        (torch.rand(1, 3, 8, 8), "(3, H, W)"),
        (torch.rand(8, 8), "(3, H, W)"),
        (np.zeros((8, 8, 3), np.float32), "torch.Tensor"),
        (Image.new("RGB", (8, 8)), "torch.Tensor"),
    ],
    ids=["no rows", "no columns", "nan", "inf", "uint8", "int64", "bool", "normalised", "0..255 float",
         "4 channels", "batched", "2-d", "numpy", "PIL"],
)  # fmt: skip
def test_predict_refuses_what_it_cannot_segment(segmenter, image, words):
    with pytest.raises(ZeroSegError, match=None) as caught:
        segmenter.predict(image)
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.bfloat16])
def test_predict_takes_any_float_dtype(segmenter, dtype):
    labels = segmenter.predict(GOOD.to(dtype)).labels
    assert labels.shape == (20, 24)
