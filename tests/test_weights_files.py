"""Weight files are read without unpickling code: a malicious pickle is refused in one line."""

from __future__ import annotations

import os

import pytest
import torch

from zeroseg.cli import main
from zeroseg.errors import ZeroSegError
from zeroseg.runtime.weights_file import read_weights
from zeroseg.training.checkpoint import load_checkpoint

MARKER = "zeroseg-pickle-ran"


class RunsCode:
    """Unpickling this calls os.system: what a weights_only loader must refuse."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture
def evil(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "config": {}, "payload": RunsCode()}, path)
    return path


def test_pickled_code_is_refused_everywhere(evil, tmp_path, capsys):
    from conftest import write_images

    images = write_images(tmp_path / "images", 8)  # one micro-batch: the weights fail first
    with pytest.raises(ZeroSegError, match="refused: loading could run code") as info:
        read_weights(evil, "checkpoint")
    assert "\n" not in str(info.value)
    with pytest.raises(ZeroSegError, match="evil.pt"):
        load_checkpoint(evil)
    for override in (f"teacher.pretrained={evil}", f"encoder.init_checkpoint={evil}"):
        code = main(["train", "--preset", "tiny", "--data", str(images), "--out",
                     str(tmp_path / "run"), "--steps", "1", override])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and "evil.pt" in err, err
    assert not (tmp_path / MARKER).exists()  # the payload never ran


def test_truncated_and_foreign_files(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.arange(1000.0)}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ZeroSegError, match="cannot read checkpoint .*truncated.pt"):
        read_weights(truncated, "checkpoint")
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(ZeroSegError, match="notes.safetensors"):
        read_weights(text, "teacher checkpoint")
    with pytest.raises(ZeroSegError, match="does not exist"):
        read_weights(tmp_path / "nowhere.pt", "checkpoint")
    assert torch.equal(read_weights(good, "checkpoint")["w"], torch.arange(1000.0))
