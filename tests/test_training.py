import json
import math

import pytest
import torch

from zeroseg.config import load_config
from zeroseg.errors import ZeroSegError
from zeroseg.models.teacher import build_teacher
from zeroseg.training import checkpoint as ckpt
from zeroseg.training.loop import make_schedule, train
from zeroseg.training.optim import lr_at


def test_checkpoints_land_with_the_config_and_without_the_teacher(tiny_run):
    checkpoints = ckpt.list_checkpoints(tiny_run)
    assert [p.name for p in checkpoints] == ["step_0000003.pt", "step_0000006.pt"]
    assert (tiny_run / "config.yaml").is_file()
    state = ckpt.load_checkpoint(tiny_run)
    assert state["step"] == 6 and state["config"]["optim"]["batch_size"] == 16
    assert not any(k.startswith(("teacher", "clip")) for k in state["model"])
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 5]  # the first step, then every log_every=5
    assert all(math.isfinite(records[0][k]) for k in ("loss", "distillation_loss"))


def test_loss_decreases_over_thirty_steps(tmp_path, image_folder):
    config = load_config("tiny", [f"data.root={image_folder}", "train.steps=30"])
    result = train(config, tmp_path / "run", progress=False)
    first = sum(r["loss"] for r in result.history[:3]) / 3
    last = sum(r["loss"] for r in result.history[-3:]) / 3
    assert last < 0.8 * first


def test_resume_continues_from_the_last_step(tmp_path, image_folder):
    run = tmp_path / "run"
    base = [f"data.root={image_folder}", "train.checkpoint_every=2"]
    train(load_config("tiny", base + ["train.steps=4"]), run, progress=False)
    with pytest.raises(ZeroSegError, match="--resume"):
        train(load_config("tiny", base + ["train.steps=6"]), run, progress=False)
    result = train(load_config("tiny", base + ["train.steps=6"]), run, resume=True, progress=False)
    assert [r["step"] for r in result.history] == [5, 6]
    assert ckpt.load_checkpoint(run)["step"] == 6


def test_the_teacher_used_by_train_is_unchanged_by_training(tmp_path, image_folder, monkeypatch):
    import zeroseg.training.loop

    built = []

    def build_and_remember(cfg):
        teacher = build_teacher(cfg)
        built.append((teacher, {k: v.clone() for k, v in teacher.state_dict().items()}))
        return teacher

    monkeypatch.setattr(zeroseg.training.loop, "build_teacher", build_and_remember)
    config = load_config("tiny", [f"data.root={image_folder}", "train.steps=3"])
    result = train(config, tmp_path / "run", progress=False)
    [(teacher, before)] = built
    assert result.steps == 3 and not teacher.training
    after = teacher.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_task_never_updates_the_teacher(image_folder):
    from zeroseg.models.build import build_zeroseg
    from zeroseg.training.task import DistillationTask

    config = load_config("tiny")
    teacher = build_teacher(config.teacher)
    before = [p.clone() for p in teacher.parameters()]
    student = build_zeroseg(config.encoder, config.seg_head, config.decoder)
    task = DistillationTask(student, teacher, config.loss, 0.6)
    optimizer = torch.optim.AdamW(list(task.parameters()), lr=1e-2)  # even if handed over
    task.train()
    for _ in range(2):
        task(torch.rand(2, 3, 64, 64))["loss"].backward()
        optimizer.step()
    assert not teacher.training
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))


def test_overlap_matching_trains_through_the_masked_task():
    from zeroseg.models.build import build_zeroseg
    from zeroseg.training.task import DistillationTask

    config = load_config("tiny", ["loss.matching=overlap", "loss.grouping_information_weight=0.1"])
    teacher = build_teacher(config.teacher)
    student = build_zeroseg(config.encoder, config.seg_head, config.decoder)
    task = DistillationTask(student, teacher, config.loss, 0.6)
    out = task(torch.rand(2, 3, 64, 64))
    out["loss"].backward()
    assert out["matched_views"].shape == (2, config.seg_head.num_group_tokens[-1])
    assert out["matched_views"].min() >= 1 and torch.isfinite(out["loss"])
    assert "grouping_loss" in out


def test_schedule_and_lr():
    config = load_config("paper", ["train.steps=0"])
    schedule = make_schedule(config, 1_281_167, world_size=8)
    assert schedule.accumulation == 8 and schedule.peak_lr == pytest.approx(2.4e-3)
    assert schedule.total_steps == 80 * 312 and schedule.warmup_steps == 20 * 312
    assert lr_at(0, 1.0, 10, 100) == pytest.approx(0.1)
    assert lr_at(10, 1.0, 10, 100) == pytest.approx(1.0)
    assert lr_at(100, 1.0, 10, 100) == pytest.approx(0.0)
    with pytest.raises(ZeroSegError, match="multiple"):
        make_schedule(load_config("paper", ["optim.micro_batch_size=100"]), 1000, 1)


def test_missing_data_folder(tmp_path):
    with pytest.raises(ZeroSegError, match="does not exist"):
        train(load_config("tiny", [f"data.root={tmp_path / 'nope'}"]), tmp_path / "run")


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_its_good_checkpoints(
    tmp_path, image_folder
):
    run = tmp_path / "run"
    overrides = [
        f"data.root={image_folder}", "train.steps=40", "train.checkpoint_every=1",
        "train.keep_checkpoints=2", "optim.base_lr=1e6", "optim.warmup_epochs=0",
    ]  # fmt: skip
    with pytest.raises(
        ZeroSegError, match=r"training stopped at step \d+: the (loss|weights) .*not finite"
    ):
        train(load_config("tiny", overrides), run, progress=False)
    saved = ckpt.list_checkpoints(run)
    assert saved, "the steps before the divergence were checkpointed"
    for path in saved:
        weights = ckpt.load_checkpoint(path)["model"]
        assert all(torch.isfinite(v).all() for v in weights.values()), path.name


def test_resume_mid_epoch_is_exact(tmp_path, image_folder):
    """32 images, micro-batches of 8, batches of 16: 2 steps per epoch; resuming after step 3
    (mid-epoch) must give the uninterrupted run's losses and weights."""
    base = [f"data.root={image_folder}", "train.checkpoint_every=1", "train.steps=6",
            "train.keep_checkpoints=0"]  # fmt: skip
    straight = train(load_config("tiny", base), tmp_path / "a", progress=False)
    run = tmp_path / "b"
    train(load_config("tiny", base), run, progress=False)
    for path in ckpt.list_checkpoints(run)[3:]:  # as if killed after step 3
        path.unlink()
        ckpt.checksum_path(path).unlink()
    (run / "checkpoints" / ".step_0000004.pt.x1.tmp").write_bytes(b"half a checkpoint")
    resumed = train(load_config("tiny", base), run, resume=True, progress=False)
    assert [r["step"] for r in resumed.history] == [4, 5, 6]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history[3:]]
    a, b = ckpt.load_checkpoint(tmp_path / "a"), ckpt.load_checkpoint(run)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert not list((run / "checkpoints").glob("*.tmp"))
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # no step logged twice


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, image_folder, caplog):
    base = [f"data.root={image_folder}", "train.checkpoint_every=2", "train.steps=4"]
    run = tmp_path / "run"
    train(load_config("tiny", base), run, progress=False)
    latest = ckpt.latest_checkpoint(run)
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tensors
    latest.write_bytes(bytes(data))
    with pytest.raises(ZeroSegError, match="corrupt"):
        ckpt.load_checkpoint(latest)
    more = load_config("tiny", [*base[:-1], "train.steps=6"])
    with caplog.at_level("WARNING"):
        result = train(more, run, resume=True, progress=False)
    assert [r["step"] for r in result.history] == [3, 4, 5, 6]
    assert "step_0000004.pt" in caplog.text and "step_0000002.pt" in caplog.text


@pytest.mark.timeout(300)
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, image_folder):
    """A real ``kill -9`` of ``zeroseg train`` once a checkpoint exists, then ``--resume``."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def command(out):
        return [sys.executable, "-m", "zeroseg", "train", "--preset", "tiny", "--data",
                str(image_folder), "--out", str(out), "--steps", "8", "--resume", "--no-progress",
                "train.checkpoint_every=1", "train.log_every=1"]  # fmt: skip

    subprocess.run(command(tmp_path / "straight"), env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while not ckpt.list_checkpoints(killed) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(command(killed), env=env, check=True, capture_output=True)
    a, b = ckpt.load_checkpoint(tmp_path / "straight"), ckpt.load_checkpoint(killed)
    assert a["step"] == b["step"] == 8
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    lines = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    straight = [
        json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [(r["step"], r["loss"]) for r in lines] == [(r["step"], r["loss"]) for r in straight]
