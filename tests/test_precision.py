"""``InferenceConfig.precision`` for the student: autocast on CUDA only, float32 after the forward.

No GPU here: the CUDA branch is checked through the helper's decision (``autocast_dtype``) and the
context it builds (constructing ``torch.autocast("cuda")`` touches no GPU); the half-precision
arithmetic is exercised on the CPU with bf16 autocast, which the helper is patched to choose.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from zeroseg.config import resolve_config
from zeroseg.inference import precision as precision_module
from zeroseg.inference.config import InferenceConfig
from zeroseg.inference.precision import autocast_dtype, falls_back, forward_autocast
from zeroseg.inference.segmenter import Segmenter

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.fixture(scope="module")
def student(tiny_run):
    config = InferenceConfig(short_side=64, window=64, stride=32, templates="simple1")
    segmenter = Segmenter.from_checkpoint(tiny_run, config, device="cpu")
    segmenter.set_vocabulary(["red square", "green field", ["blue sky", "sky"]], background=True)
    return segmenter


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(seed))


def test_dtype_choice_is_half_only_on_cuda():
    assert autocast_dtype("fp16", CUDA) is torch.float16
    assert autocast_dtype("bf16", CUDA) is torch.bfloat16
    assert autocast_dtype("fp32", CUDA) is None
    for precision in ("fp16", "bf16", "fp32"):
        assert autocast_dtype(precision, CPU) is None
        assert autocast_dtype(precision, torch.device("meta")) is None
    assert falls_back("bf16", CPU) and not falls_back("fp32", CPU) and not falls_back("fp16", CUDA)


def test_cuda_context_is_a_real_autocast_at_the_chosen_dtype():
    with warnings.catch_warnings():  # without a GPU torch warns that it would disable it
        warnings.simplefilter("ignore", UserWarning)
        for precision, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
            context = forward_autocast(precision, CUDA)
            assert isinstance(context, torch.autocast)
            assert context.device == "cuda" and context.fast_dtype == dtype
    for device, precision in ((CUDA, "fp32"), (CPU, "bf16"), (CPU, "fp16")):
        assert not isinstance(forward_autocast(precision, device), torch.autocast)


def test_student_precision_on_a_cpu_is_fp32_and_said_once(student, caplog):
    full = student.with_config(precision="fp32")
    for precision in ("fp16", "bf16"):
        half = student.with_config(precision=precision)
        caplog.clear()
        with caplog.at_level("INFO", logger="zeroseg.inference.segmenter"):
            first = half.predict(_image())
            half.with_config(mode="slide").predict(_image(1))  # a copy after the log: quiet
            half.predict(_image(2))
        assert caplog.text.count(f"precision={precision} needs CUDA") == 1
        expected = full.predict(_image())
        assert first.scores.dtype == torch.float32
        assert torch.equal(first.scores, expected.scores)
        assert torch.equal(first.labels, expected.labels)
    caplog.clear()
    with caplog.at_level("INFO", logger="zeroseg.inference.segmenter"):
        full.predict(_image())
    assert "needs CUDA" not in caplog.text


@torch.no_grad()
def test_student_half_forward_is_cast_back_to_float32(student, monkeypatch):
    """bf16 autocast on the CPU stands in for CUDA's: the forward runs in bf16 (the numbers move),
    everything after it in float32 (the head's outputs and the scores are float32, and close)."""
    image = _image()
    ids32, out32 = student.segment_map(image[None])
    probs32, _ = student.segment_class_scores(out32)
    full = student.predict(image)
    monkeypatch.setattr(
        precision_module, "autocast_dtype", lambda precision, device: torch.bfloat16
    )
    half = student.with_config(precision="bf16")
    ids16, out16 = half.segment_map(image[None])
    for tensor in (out16.segment_embeddings, out16.global_embedding, *out16.soft_assignments):
        assert tensor.dtype == torch.float32
    assert not torch.equal(out16.segment_embeddings, out32.segment_embeddings)  # bf16 ran
    assert torch.allclose(out16.segment_embeddings, out32.segment_embeddings, atol=0.05)
    probs16, _ = half.segment_class_scores(out16)
    assert probs16.dtype == torch.float32 and torch.allclose(probs16, probs32, atol=0.05)
    assert (ids16 == ids32).float().mean() > 0.8
    result = half.predict(image)
    assert result.scores.dtype == torch.float32 and result.model_scores.dtype == torch.float32
    close = (result.model_scores - full.model_scores).abs() < 0.05  # segments' edges may move
    assert close.float().mean() > 0.8 and not torch.equal(result.model_scores, full.model_scores)
    assert (result.labels == full.labels).float().mean() > 0.8


def test_segment_command_sets_the_students_precision(tiny_run, tmp_path, caplog):
    from PIL import Image

    from zeroseg.cli import main

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    argv = ["segment", str(tmp_path / "red.png"), "--checkpoint", str(tiny_run), "--classes",
            "a, b", "--out", str(tmp_path / "seg"), "--device", "cpu", "--no-progress"]  # fmt: skip
    with caplog.at_level("INFO", logger="zeroseg.inference.segmenter"):
        assert main([*argv, "--set", "precision=bf16"]) == 0
    assert caplog.text.count("precision=bf16 needs CUDA: running fp32 on cpu") == 1
    caplog.clear()
    with caplog.at_level("INFO", logger="zeroseg.inference.segmenter"):
        assert main(argv) == 0  # the student's default: fp32, nothing to say
    assert "needs CUDA" not in caplog.text
    assert resolve_config(InferenceConfig, overrides=["precision=bf16"]).precision == "bf16"
