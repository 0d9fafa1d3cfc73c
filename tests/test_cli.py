import json
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from zeroseg.cli import main


def test_train_then_segment(tmp_path, image_folder, capsys):
    run = tmp_path / "r"
    assert main(["train", "--data", str(image_folder), "--out", str(run), "--steps", "2",
                 "--no-progress"]) == 0  # fmt: skip
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step_0000002.pt",
        "step_0000002.pt.sha256",
    ]
    image = tmp_path / "photo.jpg"
    Image.fromarray((np.random.rand(45, 77, 3) * 255).astype(np.uint8)).save(image)
    out = tmp_path / "seg"
    code = main(["segment", str(image), "--checkpoint", str(run), "--classes", "cat, dog, grass",
                 "--out", str(out), "--background"])  # fmt: skip
    assert code == 0
    labels = Image.open(out / "photo.png")
    assert labels.mode == "P" and labels.size == (77, 45)
    assert Image.open(out / "photo_overlay.png").width == 77
    summary = json.loads((out / "photo.json").read_text())
    assert sum(c["pixels"] for c in summary["classes"].values()) == 45 * 77
    assert set(summary["classes"]) <= {"background", "cat", "dog", "grass"}
    assert np.asarray(labels).max() <= 3


def _one_line_error(capsys, code):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("zeroseg: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_inputs_give_one_line_errors(tmp_path, tiny_run, capsys):
    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not an image")
    base = ["--checkpoint", str(tiny_run), "--out", str(tmp_path / "o")]
    err = _one_line_error(
        capsys, main(["segment", str(tmp_path / "missing.jpg"), *base, "--classes", "a"])
    )
    assert "missing.jpg" in err and "no images to segment" in err
    err = _one_line_error(capsys, main(["segment", str(corrupt), *base, "--classes", "a"]))
    assert "corrupt.jpg" in err
    _one_line_error(capsys, main(["segment", str(good), *base, "--classes", " , "]))
    err = _one_line_error(capsys, main(["segment", str(good), *base, "--classes", "a, b, a"]))
    assert "twice" in err
    assert not (tmp_path / "o").exists()


def test_demo_rejects_bad_settings_before_writing_anything(tmp_path, capsys):
    err = _one_line_error(capsys, main(["demo", "--out", str(tmp_path), "--steps", "0"]))
    assert "steps" in err and not any(tmp_path.iterdir())
    err = _one_line_error(capsys, main(["demo", "--out", str(tmp_path), "teacher.nope=1"]))
    assert "teacher.nope" in err and not any(tmp_path.iterdir())


def test_checkpoint_of_another_architecture(tmp_path, tiny_run, capsys):
    state = torch.load(next((tiny_run / "checkpoints").glob("*.pt")), weights_only=True)
    state["config"]["seg_head"]["width"] = 32
    other = tmp_path / "other.pt"
    torch.save(state, other)
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    args = ["segment", str(img), "--classes", "a", "--out", str(tmp_path / "o"), "--checkpoint"]
    err = _one_line_error(capsys, main([*args, str(other)]))
    assert "other.pt" in err
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    err = _one_line_error(capsys, main([*args, str(tmp_path / "foreign.pt")]))
    assert "not a zeroseg checkpoint" in err
    _one_line_error(capsys, main([*args, str(tmp_path / "nowhere")]))


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "zeroseg", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "train" in out.stdout


def test_segment_cli_and_python_api_give_the_same_labels(tmp_path, tiny_run):
    from zeroseg import Segmenter
    from zeroseg.data.images import load_image

    image = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(3).random((50, 90, 3)) * 255).astype(np.uint8)).save(
        image
    )
    out = tmp_path / "seg"
    args = ["segment", str(image), "--checkpoint", str(tiny_run), "--out", str(out)]
    classes = [f"thing {i}" for i in range(8)]
    assert main([*args, "--classes", ", ".join(classes)]) == 0
    cli_labels = np.asarray(Image.open(out / "photo.png"))
    segmenter = Segmenter.from_checkpoint(tiny_run)  # no settings: the model's defaults
    segmenter.set_vocabulary(classes)
    labels = segmenter.predict(load_image(image)).labels.numpy()
    assert np.array_equal(cli_labels, labels)
    size = segmenter.model.input_size
    assert (segmenter.config.short_side, segmenter.config.mode) == (size, "whole")
    assert len(np.unique(labels)) > 1


def test_bad_run_settings_are_one_line_errors(tmp_path, image_folder, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    base = ["train", "--preset", "tiny", "--data", str(image_folder), "--steps", "1"]
    err = _one_line_error(
        capsys, main([*base, "--out", str(tmp_path / "r"), "train.device=cuda:7"])
    )
    assert "cuda:7" in err
    err = _one_line_error(capsys, main([*base, "--out", str(tmp_path / "r"), "train.device=tpu"]))
    assert "tpu" in err
    err = _one_line_error(capsys, main([*base, "--out", str(a_file)]))
    assert "is not a folder" in err
    err = _one_line_error(capsys, main(["demo", "--out", str(a_file)]))
    assert "is not a folder" in err and a_file.read_text() == "keep me"


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, zeroseg.cli; zeroseg.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
