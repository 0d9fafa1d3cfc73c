"""The paper preset at full size on CPU: ViT-B/16 student, random-weight ViT-L/14 teacher."""

import time

import pytest
import torch

from zeroseg.config import load_config
from zeroseg.errors import ZeroSegError
from zeroseg.models.build import build_zeroseg
from zeroseg.models.teacher import build_teacher
from zeroseg.training.task import DistillationTask


@pytest.mark.timeout(600)
def test_paper_preset_forward_backward_with_random_teacher():
    config = load_config("paper", ["teacher.pretrained=none"])
    teacher = build_teacher(config.teacher)
    images = torch.rand(2, 3, 224, 224)
    views = teacher.encode_views(images)
    assert views.shape == (2, 30, 768)
    student = build_zeroseg(config.encoder, config.seg_head, config.decoder)
    task = DistillationTask(student, teacher, config.loss, config.encoder.mask_ratio)
    out = task(images, views)  # the views computed above: the ViT-L/14 teacher runs once
    out["loss"].backward()
    assert out["matched_views"].shape == (2, 8)
    assert student.seg_head.group_tokens[0].grad is not None
    assert all(p.grad is None for p in teacher.parameters())


def test_paper_preset_refuses_to_train_on_a_random_teacher_without_weights():
    config = load_config("paper")
    start = time.time()
    with pytest.raises(ZeroSegError, match="ViT-L-14/openai.*offline"):
        build_teacher(config.teacher)
    assert time.time() - start < 15
