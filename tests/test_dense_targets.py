"""Dense targets for the student (beyond the paper): the teacher's dense readout at the token grid,
a loss through the assignment maps, cached with the views."""

import numpy as np
import pytest
import torch

from zeroseg.config import load_config
from zeroseg.data.images import ImageFolder
from zeroseg.data.teacher_cache import cache_identity, cached_dataset
from zeroseg.models.build import build_zeroseg
from zeroseg.models.dense_readout import dense_features
from zeroseg.models.teacher import build_teacher
from zeroseg.runtime.distributed import DistInfo
from zeroseg.training.losses import dense_distillation_loss
from zeroseg.training.task import DistillationTask

DENSE = ["loss.dense_weight=1.0", "teacher.dense_size=64"]


def test_encode_dense_is_the_readout_at_the_token_grid():
    config = load_config("tiny", DENSE)
    teacher = build_teacher(config.teacher)
    images = torch.rand(3, 3, 64, 64)
    stride = teacher.clip.visual.patch_size[0]
    grid = (64 // stride, 64 // stride)
    dense = teacher.encode_dense(images, grid)
    full = dense_features(teacher.clip.visual, teacher.normalize(images))  # (B, D, gh, gw)
    assert dense.shape == (3, grid[0] * grid[1], teacher.embed_dim)
    assert torch.allclose(dense, full.flatten(2).transpose(1, 2), atol=1e-5)
    one = teacher.encode_dense(images[1:2], grid)
    assert torch.allclose(one[0], dense[1], atol=1e-5)  # batched = one at a time
    coarse = teacher.encode_dense(images, (2, 2))
    pooled = torch.nn.functional.adaptive_avg_pool2d(full, 2).flatten(2).transpose(1, 2)
    assert torch.allclose(coarse, pooled, atol=1e-5)


def test_dense_loss_is_zero_at_the_target_and_trains_segments_and_maps():
    assignment = torch.softmax(torch.randn(2, 5, 3), -1).requires_grad_()
    segments = torch.randn(2, 3, 8, requires_grad=True)
    targets = (assignment @ segments).detach()
    assert dense_distillation_loss(assignment, segments, targets).item() < 1e-6
    loss = dense_distillation_loss(assignment, segments, torch.randn(2, 5, 8))
    loss.backward()
    assert loss.item() > 0 and segments.grad.abs().sum() > 0 and assignment.grad.abs().sum() > 0


def test_task_reports_the_dense_term_only_when_weighted():
    images = torch.rand(2, 3, 64, 64)
    for overrides, present in ((DENSE, True), ([], False)):
        config = load_config("tiny", overrides)
        teacher = build_teacher(config.teacher)
        student = build_zeroseg(config.encoder, config.seg_head, config.decoder)
        task = DistillationTask(student, teacher, config.loss, config.encoder.mask_ratio)
        out = task(images)
        assert ("dense_loss" in out) is present
        if present:
            out["loss"].backward()
            assert student.seg_head.group_tokens[0].grad is not None


def test_cache_holds_dense_targets_and_names_them(tmp_path, image_folder):
    cache = tmp_path / "cache"
    config = load_config(
        "tiny", [f"data.root={image_folder}", f"data.teacher_cache={cache}", *DENSE]
    )
    dataset = ImageFolder(image_folder, 64, config.data.resize_short)
    teacher = build_teacher(config.teacher)
    paired = cached_dataset(config, dataset, teacher, torch.device("cpu"), DistInfo(), False)
    image, views, dense = paired[4]
    online = teacher.encode_dense(image.unsqueeze(0), (8, 8))[0]
    assert dense.shape == (64, 64) and views.shape == (30, 64)
    assert torch.allclose(dense, online, atol=2e-3 * online.abs().max())
    assert np.load(cache / "dense-00000.npy", mmap_mode="r").shape == (32, 64, 64)
    plain = load_config("tiny", [f"data.root={image_folder}", f"data.teacher_cache={cache}"])
    assert cache_identity(plain, dataset)["dense"] is None
    assert cache_identity(config, dataset)["dense"] == {
        "readout": "maskclip",
        "size": 64,
        "grid": [8, 8],
    }


@pytest.mark.timeout(180)
def test_training_with_cached_dense_targets_equals_online(tmp_path, image_folder):
    from zeroseg.training.loop import train

    base = [f"data.root={image_folder}", "train.steps=2", *DENSE]
    online = train(load_config("tiny", base), tmp_path / "a", progress=False)
    cached = train(
        load_config("tiny", [*base, f"data.teacher_cache={tmp_path / 'c'}"]), tmp_path / "b",
        progress=False,
    )  # fmt: skip
    for a, b in zip(online.history, cached.history):
        assert "dense_loss" in a and abs(a["dense_loss"] - b["dense_loss"]) < 2e-3


def dense_term_gradients(gradient: str) -> dict:
    """Parameter name -> gradient after one step of the dense term alone (tiny student)."""
    overrides = [*DENSE, f"loss.dense_gradient={gradient}"]
    only_dense = ["loss.reconstruction_weight=0", "loss.distillation_weight=0",
                  "loss.matching_weight=0"]  # fmt: skip
    config = load_config("tiny", [*overrides, *only_dense])
    teacher = build_teacher(config.teacher)
    student = build_zeroseg(config.encoder, config.seg_head, None)
    task = DistillationTask(student, teacher, config.loss, config.encoder.mask_ratio)
    out = task(torch.rand(2, 3, 64, 64))
    out["loss"].backward()
    assert out["dense_loss"] > 0
    return {n: p.grad for n, p in student.named_parameters()}


def test_a_content_only_dense_term_trains_token_content_not_the_assignment():
    grads = dense_term_gradients("content")

    def moved(name: str) -> bool:
        return grads[name] is not None and grads[name].abs().sum() > 0

    logits = [n for n in grads if ".assign.q_proj." in n or ".assign.k_proj." in n]
    assert logits and not any(moved(n) for n in logits)  # where tokens go: untouched
    content = [n for n in grads if ".assign.v_proj." in n or n.startswith("seg_head.projector.")]
    assert content and all(moved(n) for n in content)
    assert moved("encoder.vit.patch_embed.proj.weight")


def test_a_head_pass_with_its_own_assignments_gives_the_same_segments():
    config = load_config("tiny")
    student = build_zeroseg(config.encoder, config.seg_head, None).eval()
    tokens = torch.randn(2, 16, config.encoder.width)
    first = student.seg_head(tokens)
    again = student.seg_head(tokens, fixed_assignments=first.assignments)
    assert torch.allclose(first.segment_embeddings, again.segment_embeddings, atol=1e-6)
    other = [torch.roll(a, 1, dims=-1) for a in first.assignments]
    changed = student.seg_head(tokens, fixed_assignments=other)
    assert not torch.allclose(first.segment_embeddings, changed.segment_embeddings, atol=1e-3)


def test_rank_term_alone_fetches_the_dense_targets_and_ignores_hidden_patches():
    config = load_config("tiny", ["loss.dense_rank_weight=1.0", "teacher.dense_size=64"])
    assert config.loss.dense_weight == 0
    teacher = build_teacher(config.teacher)
    student = build_zeroseg(config.encoder, config.seg_head, config.decoder)
    task = DistillationTask(student, teacher, config.loss, config.encoder.mask_ratio)
    images = torch.rand(2, 3, 64, 64)
    torch.manual_seed(0)
    out = task(images)  # dense targets computed online: the rank term needs them
    assert "dense_rank_loss" in out and "dense_loss" not in out
    grid = 64 // config.encoder.patch_size
    dense = torch.randn(2, grid * grid, teacher.embed_dim)
    torch.manual_seed(1)
    first = task(images, None, dense)
    torch.manual_seed(1)
    probe = student(images, config.encoder.mask_ratio)  # the same draw as the task's
    changed = dense.clone()
    changed[probe.mask.bool()] = torch.randn(int(probe.mask.sum()), teacher.embed_dim)
    torch.manual_seed(1)
    second = task(images, None, changed)
    assert torch.allclose(first["dense_rank_loss"], second["dense_rank_loss"])
    changed[~probe.mask.bool()] += 1.0  # a visible target moved: the term moves
    torch.manual_seed(1)
    assert not torch.allclose(
        task(images, None, changed)["dense_rank_loss"], first["dense_rank_loss"]
    )
