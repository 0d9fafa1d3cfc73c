"""``benchmarks/gpu_run.py`` runs end to end at tiny size on CPU, so it is ready when a GPU is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_run.py"


@pytest.mark.timeout(300)
def test_gpu_run_at_tiny_size_writes_every_section(tmp_path):
    out = tmp_path / "gpu_run.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert {"machine", "device", "mode", "flops", "train", "teacher_cache", "inference",
            "projection", "skipped", "errors", "seconds"} <= set(result)  # fmt: skip
    assert result["mode"] == "tiny" and not result["errors"]
    assert list(result["skipped"]) == [
        "train_compiled"
    ]  # compiling is a CUDA row (tests/test_compile.py)
    assert {"student_step", "teacher_views"} <= set(result["flops"])
    assert [row["paper_share"] for row in result["train"]] == [False, True]
    for row in result["train"]:
        assert row["images_per_s"] > 0 and {"mfu", "peak_memory_gib", "compile"} <= set(row)
        fused, total = map(int, row["fused_attention"].split("/"))
        assert fused == total > 0
    assert result["teacher_cache"]["best_images_per_s"] > 0
    assert result["teacher_cache"]["imagenet_hours"] > 0
    methods = {row["method"].split()[0] for row in result["inference"]}
    assert methods == {"zeroseg", "maskclip", "sclip", "clearclip", "naclip"}
    assert len({row["geometry"] for row in result["inference"]}) == 2
    student = [
        row["method"].split()[-1] for row in result["inference"] if "zeroseg" in row["method"]
    ]
    assert student == ["fp32", "bf16", "fp16"] * 2  # the student at each precision, per geometry
    assert {row["precision"] for row in result["inference"]} == {"fp32"}  # a CPU runs fp32
    assert result["projection"]["total_gpu_hours"] > 0
    assert "| training step |" in done.stdout and "| inference (batch 1) |" in done.stdout
