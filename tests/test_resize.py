"""Inference resizing: mmcv's keep-ratio size rule and cv2's 8-bit bilinear, bit for bit."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from zeroseg.inference.resize import cv2_bilinear, keep_ratio_size
from zeroseg.inference.segmenter import InferenceConfig, resize_short_side


def test_keep_ratio_size_follows_mmcv_rounding():
    # mmcv.rescale_size with scale (2048, 448): int(side * scale + 0.5)
    assert keep_ratio_size(375, 500, 448, 2048) == (448, 597)
    assert keep_ratio_size(480, 640, 448, 2048) == (448, 597)
    assert keep_ratio_size(1000, 1333, 448, 2048) == (448, 597)
    assert keep_ratio_size(100, 1000, 448, 2048) == (205, 2048)  # long side capped
    assert keep_ratio_size(375, 500, 336, 2048) == (336, 448)
    assert keep_ratio_size(10, 5, 7, 2048) == (14, 7)  # 3.5 rounds half up, not to even


@pytest.mark.parametrize(
    "size", [(375, 500), (480, 640), (1000, 1333), (333, 500), (7, 9), (200, 100), (61, 907)]
)
def test_cv2_bilinear_matches_opencv_bit_for_bit(size):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(sum(size))
    image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    target = keep_ratio_size(*size, 448, 2048)
    expected = cv2.resize(image, target[::-1], interpolation=cv2.INTER_LINEAR)
    levels = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    ours = cv2_bilinear(levels, target)[0].permute(1, 2, 0).numpy().astype(np.uint8)
    assert np.array_equal(ours, expected)


def test_protocol_resize_differs_from_antialiased_resize_when_shrinking():
    image = torch.rand(1, 3, 480, 640)
    mmcv = InferenceConfig(short_side=448, resize="mmcv")
    antialias = replace(mmcv, resize="antialias")
    a, b = resize_short_side(image, mmcv), resize_short_side(image, antialias)
    assert a.shape == b.shape == (1, 3, 448, 597)
    assert torch.equal(a, (a * 255).round() / 255)  # 8-bit levels, as mmseg's pipeline has
    assert (a - b).abs().max() > 0.1  # no antialiasing filter in cv2's bilinear
    assert resize_short_side(image, replace(mmcv, short_side=0)) is image


def test_mmcv_resize_stays_on_the_input_device():
    # on CUDA the taps were made on the CPU and indexing failed (found by benchmarks/gpu_run.py on
    # an H200); the meta device reproduces the same mismatch without a GPU
    levels = torch.rand(1, 3, 10, 12, device="meta") * 255
    out = cv2_bilinear(levels, (5, 6))
    assert out.device.type == "meta" and out.shape == (1, 3, 5, 6)
