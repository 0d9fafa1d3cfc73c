"""Progress off a terminal: a line every tenth of the work, no carriage-return redraws."""

import io

from tqdm import tqdm

from zeroseg.runtime.progress import LineProgress, progress


def test_lines_off_a_terminal(capsys):
    seen = list(progress(range(250), desc="work"))
    err = capsys.readouterr().err
    assert seen == list(range(250))
    lines = err.strip().splitlines()
    assert "\r" not in err and 9 <= len(lines) <= 11
    assert lines[-1].startswith("work: 250/250 (")


def test_manual_updates_and_postfix():
    stream = io.StringIO()
    bar = LineProgress(total=20, desc="train", initial=10, stream=stream)
    for _ in range(10):
        bar.update(1)
        bar.set_postfix({"loss": "0.5"})
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("train: 20/20") and lines[-1].endswith("loss=0.5")
    assert len(lines) == 5  # every 2 of 20 from step 10: 12, 14, 16, 18 and the end


def test_a_bar_in_a_terminal_and_nothing_when_disabled(monkeypatch, capsys):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    bar = progress(total=3, desc="x")
    assert isinstance(bar, tqdm)
    bar.close()
    capsys.readouterr()
    list(progress(range(5), enabled=False))
    assert capsys.readouterr().err == ""


def test_training_logs_a_few_lines(tmp_path, image_folder, capsys):
    from zeroseg.config import load_config
    from zeroseg.training.loop import train

    config = load_config("tiny", [f"data.root={image_folder}", "train.steps=30"])
    train(config, tmp_path / "run", progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train:")]
    assert 9 <= len(lines) <= 11 and lines[-1].startswith("train: 30/30")
