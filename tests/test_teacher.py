import time

import open_clip
import pytest
import torch

from zeroseg.config import TeacherConfig, load_config
from zeroseg.errors import ZeroSegError
from zeroseg.models.teacher import build_teacher, grid_boxes


def tiny_teacher():
    return build_teacher(load_config("tiny").teacher)


def test_grid_boxes_cover_the_image_without_overlap():
    boxes = grid_boxes(224, 224, (1, 2, 3, 4))
    assert len(boxes) == 30 and boxes[0] == (0, 224, 0, 224)
    for start, g in ((1, 2), (5, 3), (14, 4)):
        cover = torch.zeros(224, 224)
        for y0, y1, x0, x1 in boxes[start : start + g * g]:
            cover[y0:y1, x0:x1] += 1
        assert torch.all(cover == 1)
    assert [b[1] - b[0] for b in boxes[5:8:1]] == [75, 75, 75]  # first row of 3x3 cells
    assert sorted({b[1] - b[0] for b in boxes[5:14]}) == [74, 75]


def test_views_are_batched_and_ordered():
    teacher = tiny_teacher()
    images = torch.rand(2, 3, 64, 64)
    views = teacher.encode_views(images)
    assert views.shape == (2, 30, 64)
    assert torch.allclose(views[:, 0], teacher.encode_images(images), atol=1e-5)
    cell = teacher.encode_images(images[:, :, 32:64, 0:32])  # 2x2 grid, bottom-left = view 3
    assert torch.allclose(views[:, 3], cell, atol=1e-5)


def test_teacher_is_frozen_and_stays_in_eval_mode():
    teacher = tiny_teacher()
    teacher.train()
    assert not teacher.training and not teacher.clip.training
    assert not any(p.requires_grad for p in teacher.parameters())


def test_random_teacher_is_seeded():
    a, b = tiny_teacher(), tiny_teacher()
    assert torch.equal(a.encode_text(["a cat"]), b.encode_text(["a cat"]))


def test_classifier_is_prompt_ensembled_and_normalised():
    teacher = tiny_teacher()
    emb = teacher.build_classifier([["cat", "kitten"], ["dog"]], ["a photo of a {}.", "a {}"])
    assert emb.shape == (3, 64)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_missing_pretrained_weights_fail_fast_offline(monkeypatch):
    downloads = []
    monkeypatch.setattr(open_clip, "create_model", lambda *a, **k: downloads.append(a))
    start = time.time()
    with pytest.raises(ZeroSegError, match="ViT-B-32/openai.*offline"):
        build_teacher(TeacherConfig(model="ViT-B-32", pretrained="openai"))
    assert time.time() - start < 15 and downloads == []  # refused before any download


def test_with_the_hub_online_the_download_is_tried_and_its_failure_named(monkeypatch):
    """Simulates a reachable network: the offline switch off, open_clip's download answering."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    tried = []

    def download(name, pretrained=None, **kwargs):
        tried.append((name, pretrained))
        raise RuntimeError("HTTP 503 from the hub\nsecond line")

    monkeypatch.setattr(open_clip, "create_model", download)
    with pytest.raises(ZeroSegError, match=r"ViT-B-32/openai: HTTP 503 from the hub$"):
        build_teacher(TeacherConfig(model="ViT-B-32", pretrained="openai"))
    assert tried == [("ViT-B-32", "openai")]


def test_unknown_model_and_tag():
    with pytest.raises(ZeroSegError, match="unknown open_clip model"):
        build_teacher(TeacherConfig(model="ViT-Nope"))
    with pytest.raises(ZeroSegError, match="neither a file nor a tag"):
        build_teacher(TeacherConfig(model="ViT-B-32", pretrained="made-up-tag"))


def test_local_state_dict_checkpoint_loads(tmp_path):
    teacher = tiny_teacher()
    path = tmp_path / "teacher.pt"
    torch.save(teacher.clip.state_dict(), path)
    cfg = load_config("tiny", [f"teacher.pretrained={path}", "teacher.seed=5"]).teacher
    loaded = build_teacher(cfg)
    assert torch.equal(loaded.encode_text(["x"]), teacher.encode_text(["x"]))
    bad = load_config("tiny", [f"teacher.pretrained={path}", "teacher.model_config.embed_dim=32"])
    with pytest.raises(ZeroSegError, match="does not fit"):
        build_teacher(bad.teacher)
