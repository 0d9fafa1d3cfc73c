"""ConfusionMatrix against hand-computed mmseg metrics (ignore index, absent classes)."""

from __future__ import annotations

import math

import pytest
import torch

from zeroseg.benchmark.metrics import ConfusionMatrix
from zeroseg.errors import ZeroSegError

NAMES = ["bg", "cat", "dog", "cow"]


def _two_images() -> ConfusionMatrix:
    cm = ConfusionMatrix(4)
    # image 1: labels with an ignored pixel; class 3 (cow) appears nowhere
    cm.update(torch.tensor([[0, 0, 1], [1, 2, 2]]), torch.tensor([[0, 1, 1], [1, 2, 255]]))
    # image 2: dog predicted where the label is cat, one more ignored pixel predicted as cow
    cm.update(torch.tensor([[2, 1], [0, 3]]), torch.tensor([[1, 1], [0, 255]]))
    return cm


def test_matrix_counts_and_ignore():
    cm = _two_images()
    expected = torch.tensor(
        [
            [2, 0, 0, 0],  # bg: 2 labelled, both right
            [1, 3, 1, 0],  # cat: 5 labelled, 3 right, 1 -> bg, 1 -> dog
            [0, 0, 1, 0],  # dog: 1 labelled, right
            [0, 0, 0, 0],  # cow: never labelled; the ignored pixel predicted cow is not counted
        ]
    )
    assert torch.equal(cm.matrix, expected)


def test_summary_matches_hand_computation():
    summary = _two_images().summary(NAMES)
    # IoU: bg 2/(2+3-2)=2/3; cat 3/(3+5-3)=3/5; dog 1/(2+1-1)=1/2; cow union 0 -> NaN (skipped)
    ious = [2 / 3, 3 / 5, 1 / 2]
    assert summary["miou"] == pytest.approx(100 * sum(ious) / 3, abs=1e-6)
    assert summary["per_class"]["bg"] == pytest.approx(100 * 2 / 3, abs=1e-6)
    assert summary["per_class"]["cat"] == pytest.approx(60.0, abs=1e-6)
    assert summary["per_class"]["dog"] == pytest.approx(50.0, abs=1e-6)
    assert math.isnan(summary["per_class"]["cow"])
    # aAcc = 6 right / 8 labelled; mAcc = mean(2/2, 3/5, 1/1)
    assert summary["aacc"] == pytest.approx(75.0, abs=1e-6)
    assert summary["macc"] == pytest.approx(100 * (1 + 0.6 + 1) / 3, abs=1e-6)
    assert summary["num_pixels"] == 8


def test_class_only_predicted_counts_as_zero():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 2, 1]), torch.tensor([0, 1, 1]))
    summary = cm.summary(["a", "b", "c"])
    # a 1/1, b 1/2, c predicted but never labelled: union 1, IoU 0 -> counted
    assert summary["per_class"]["c"] == 0.0
    assert summary["miou"] == pytest.approx(100 * (1 + 0.5 + 0) / 3, abs=1e-6)
    assert math.isnan(summary["per_class_acc"]["c"])
    assert summary["macc"] == pytest.approx(100 * (1 + 0.5) / 2, abs=1e-6)


def test_all_ignored_gives_nan_and_bad_values_raise():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([1, 0]), torch.tensor([255, 255]))
    assert math.isnan(cm.summary(["a", "b"])["miou"])
    with pytest.raises(ZeroSegError, match="label value 5"):
        cm.update(torch.tensor([0]), torch.tensor([5]))
    with pytest.raises(ZeroSegError, match="prediction value 2"):
        cm.update(torch.tensor([2]), torch.tensor([0]))
    with pytest.raises(ZeroSegError, match="shape"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))


def test_all_reduce_is_a_noop_without_process_group():
    cm = _two_images()
    before = cm.matrix.clone()
    cm.all_reduce()
    assert torch.equal(cm.matrix, before)
