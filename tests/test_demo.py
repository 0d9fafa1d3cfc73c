"""The demo chain end to end at toy sizes: world, teacher, student, evaluation, report."""

import json

import pytest

from zeroseg.synthetic.caption_clip import CaptionCLIPConfig
from zeroseg.synthetic.demo import DemoConfig, run_demo

SMALL_TEACHER = CaptionCLIPConfig(
    scene_size=32, image_size=32, embed_dim=16, vision_width=8, vision_head_width=32,
    text_width=32, text_heads=2, text_layers=1, bank_size=12, views_per_scene=2, steps=2,
    text_lock_steps=1,
    context_length=24, batch_size=12, warmup_steps=1, eval_images=10,
)  # fmt: skip
SMALL_STUDENT = [
    "encoder.width=32", "encoder.depth=1", "encoder.heads=2", "decoder.width=16", "decoder.depth=1",
    "decoder.heads=2", "seg_head.width=32", "seg_head.heads=2", "seg_head.depths=[1,1,1]",
    "seg_head.projector_hidden=32", "optim.batch_size=8", "optim.micro_batch_size=8",
]  # fmt: skip


@pytest.mark.timeout(300)
def test_demo_writes_metrics_and_report_and_reuses_the_teacher(tmp_path):
    cfg = DemoConfig(
        out_dir=tmp_path / "demo", cache_dir=tmp_path / "cache", train_images=16, val_images=4,
        image_size=32, steps=2, student_overrides=tuple(SMALL_STUDENT), teacher=SMALL_TEACHER,
    )  # fmt: skip
    metrics = run_demo(cfg, progress=False)
    saved = json.loads((cfg.out_dir / "metrics.json").read_text())
    assert saved["zeroseg"]["miou"] == metrics["zeroseg"]["miou"]
    assert {"miou", "pixel_accuracy", "oracle_miou", "segments_used_per_image"} <= set(
        saved["zeroseg"]
    )
    # the paper's readout of the same student beside the demo's composed one, same segments
    assert saved["zeroseg_segments"]["oracle_miou"] == saved["zeroseg"]["oracle_miou"]
    assert {"zeroseg_composed", "teacher_dense128_pamr"} <= set(saved)
    release = json.loads((cfg.out_dir / "model" / "config.json").read_text())
    assert "composed" in json.dumps(release)
    baselines = [k for k in saved if k.startswith("teacher") and k != "teacher_zero_shot"]
    assert {"teacher_grid2x2", "teacher_grid3x3", "teacher_grid4x4"} <= set(baselines)
    assert set(saved["teacher_zero_shot"]) == {"objects", "backgrounds"}
    page = (cfg.out_dir / "report.md").read_text()
    assert "zeroseg" in page and (cfg.out_dir / "report" / "scene_0.png").is_file()
    model = cfg.out_dir / "model"  # the student as a release, for zeroseg serve
    assert {p.name for p in model.iterdir()} == {"model.safetensors", "config.json", "README.md"}
    assert "| zeroseg |" in (model / "README.md").read_text()
    teacher = next((cfg.cache_dir / "teacher").glob("*.safetensors"))
    stamp = teacher.stat().st_mtime_ns
    run_demo(cfg, progress=False)
    assert teacher.stat().st_mtime_ns == stamp
