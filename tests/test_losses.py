import math

import pytest
import torch

from zeroseg.config import LossConfig
from zeroseg.models.teacher import grid_boxes
from zeroseg.training.losses import (
    dense_rank_loss,
    grouping_information_loss,
    multiscale_distillation_loss,
    one_to_one,
    patch_box_coverage,
    reconstruction_loss,
    segment_matching_loss,
    segment_view_iou,
    zeroseg_losses,
)


def test_segment_matching_equals_hand_computed_value():
    segments = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])  # (1, 2, 2)
    local = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [4.0, 4.0]]])  # (1, 3, 2)
    loss, matched = segment_matching_loss(segments, local, reduction="sum")
    # token 0: L1 means 0.5, 1.0, 4.0 -> 0.5 (view 0); token 1: 0.5, 0.0, 3.0 -> 0.0 (view 1)
    assert matched.tolist() == [[0, 1]]
    assert loss.item() == pytest.approx(0.5)
    mean_loss, _ = segment_matching_loss(segments, local, reduction="mean")
    assert mean_loss.item() == pytest.approx(0.25)


def test_segment_matching_ignores_the_full_image_view():
    cfg = LossConfig(reconstruction_weight=0, distillation_weight=0, normalize=False)
    segments = torch.zeros(1, 2, 4)
    views = torch.ones(1, 5, 4) * 3
    views[:, 0] = 0  # the full-image view equals the tokens exactly...
    views[:, 3] = 1  # ...but only a local view may be matched
    out = zeroseg_losses(
        cfg, images=torch.zeros(1, 3, 8, 8), reconstruction=None, mask=torch.zeros(1, 4),
        segments=segments, global_embedding=torch.zeros(1, 4), views=views,
        patch_size=4, student_normalize=lambda x: x,
    )  # fmt: skip
    assert out["matched_views"].tolist() == [[3, 3]]
    assert out["matching_loss"].item() == pytest.approx(1.0)


def test_distillation_is_zero_when_z_equals_every_view():
    z = torch.randn(3, 8)
    views = z.unsqueeze(1).repeat(1, 30, 1)
    assert multiscale_distillation_loss(z, views).item() == 0.0
    assert multiscale_distillation_loss(z, views + 1).item() == pytest.approx(1.0)


def test_base_ablation_uses_only_the_full_view():
    z = torch.zeros(1, 4)
    views = torch.ones(1, 5, 4)
    views[:, 0] = 0
    common = dict(
        images=torch.zeros(1, 3, 8, 8), reconstruction=None, mask=torch.zeros(1, 4),
        segments=torch.zeros(1, 2, 4), global_embedding=z, views=views, patch_size=4,
        student_normalize=lambda x: x,
    )  # fmt: skip
    base = LossConfig(distillation_views="full", matching_weight=0, normalize=False)
    full = LossConfig(distillation_views="all", matching_weight=0, normalize=False)
    assert zeroseg_losses(base, **common)["distillation_loss"].item() == 0.0
    assert zeroseg_losses(full, **common)["distillation_loss"].item() == pytest.approx(0.8)


def test_reconstruction_counts_masked_patches_only():
    target = torch.zeros(1, 4, 3)
    pred = torch.tensor([[[1.0] * 3, [2.0] * 3, [0.0] * 3, [0.0] * 3]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert reconstruction_loss(pred, target, mask).item() == pytest.approx(0.5)


def test_grouping_information_is_zero_for_confident_balanced_assignment():
    # 8 patches, 4 segments, each patch certain, two patches per segment
    confident = torch.eye(4).repeat_interleave(2, dim=0).unsqueeze(0)  # (1, 8, 4)
    assert grouping_information_loss(confident).item() == pytest.approx(0.0, abs=1e-5)


def test_grouping_information_penalises_collapse_and_uncertainty():
    collapsed = torch.zeros(1, 8, 4)
    collapsed[..., 0] = 1.0  # every patch in one segment: usage entropy 0
    uniform = torch.full((1, 8, 4), 0.25)  # usage balanced, every patch uncertain
    log4 = torch.log(torch.tensor(4.0)).item()
    assert grouping_information_loss(collapsed).item() == pytest.approx(log4, abs=1e-4)
    assert grouping_information_loss(uniform).item() == pytest.approx(log4, abs=1e-4)


def test_grouping_term_enters_the_total_only_when_weighted():
    torch.manual_seed(0)
    kwargs = dict(
        images=torch.rand(2, 3, 8, 8),
        reconstruction=None,
        mask=torch.ones(2, 4),
        segments=torch.randn(2, 3, 5),
        global_embedding=torch.randn(2, 5),
        views=torch.randn(2, 5, 5),
        patch_size=4,
        student_normalize=lambda x: x,
        soft_assignments=[torch.rand(2, 4, 3).softmax(-1)],
    )
    off = zeroseg_losses(LossConfig(), **kwargs)
    on = zeroseg_losses(LossConfig(grouping_information_weight=0.5), **kwargs)
    assert "grouping_loss" not in off
    expected = off["loss"] + 0.5 * on["grouping_loss"]
    assert torch.allclose(on["loss"], expected)


def test_one_to_one_gives_distinct_views_smallest_distance_first():
    distances = torch.tensor([[[0.1, 0.2, 0.9], [0.0, 0.5, 0.4]]])  # both tokens prefer view 0/1
    assert one_to_one(distances).tolist() == [[1, 0]]  # token 1 takes view 0 first (0.0)


def test_one_to_one_with_more_tokens_than_views_goes_in_rounds():
    distances = torch.tensor([[[0.0, 1.0], [0.1, 1.0], [0.2, 1.0], [0.3, 1.0], [0.4, 1.0]]])
    matched = one_to_one(distances)[0].tolist()  # every token prefers view 0
    assert matched == [0, 1, 0, 1, 0]  # rounds of two: view 0 to the closest free token each time
    assert torch.bincount(torch.tensor(matched)).tolist() == [3, 2]


def test_patch_box_coverage_splits_patches_across_cell_borders():
    coverage = patch_box_coverage((4, 4), 4, grid_boxes(16, 16, (1, 3)))  # 3x3 cells: 5/6/5 px
    assert coverage.shape == (16, 10)
    assert torch.allclose(coverage[:, 0], torch.ones(16))  # the full image holds every patch
    assert torch.allclose(coverage[:, 1:].sum(1), torch.ones(16))  # cells partition the image
    assert coverage[1, 1].item() == pytest.approx(1 / 4)  # patch x 4..8 has 1 of 4 columns < 5


def test_segment_view_iou_is_one_for_a_segment_equal_to_a_cell():
    coverage = patch_box_coverage((4, 4), 4, grid_boxes(16, 16, (2,)))  # (16, 4)
    iou = segment_view_iou(coverage.unsqueeze(0), coverage.unsqueeze(0))  # segments = the cells
    assert torch.allclose(iou[0], torch.eye(4))


def test_overlap_matching_follows_position_not_embedding():
    segments = torch.zeros(1, 2, 3)  # both tokens equal view 0 in embedding space...
    local = torch.stack([torch.zeros(3), torch.ones(3)]).unsqueeze(0)
    overlap = torch.tensor([[[0.9, 0.1], [0.2, 0.7]]])  # ...but token 1's segment lies in view 1
    loss, matched = segment_matching_loss(segments, local, "mean", "overlap", overlap)
    assert matched.tolist() == [[0, 1]] and loss.item() == pytest.approx(0.5)
    empty = torch.tensor([[[0.9, 0.1], [0.0, 0.0]]])  # token 1 owns no patch: nearest view
    _, matched = segment_matching_loss(segments, local, "mean", "overlap", empty)
    assert matched.tolist() == [[0, 0]]
    with pytest.raises(ValueError, match="overlap"):
        segment_matching_loss(segments, local, "mean", "overlap")


def test_inside_matching_prefers_the_small_cell_a_segment_covers():
    from zeroseg.training.losses import segment_view_share

    boxes = grid_boxes(16, 16, (2, 4))  # views: 4 cells of 8 px, then 16 cells of 4 px
    coverage = patch_box_coverage((4, 4), 4, boxes).unsqueeze(0)  # (1, 16 patches, 20 views)
    assignment = torch.zeros(1, 16, 2)
    assignment[0, :, 1] = 1.0
    for patch in (0, 1, 4):  # segment 0: three of the four patches of the top-left 8 px cell
        assignment[0, patch] = torch.tensor([1.0, 0.0])
    share = segment_view_share(assignment, coverage)
    iou = segment_view_iou(assignment, coverage)
    assert share[0, 0, 0] == pytest.approx(0.75) and share[0, 0, 4] == pytest.approx(1.0)
    assert iou[0, 0, 0] == pytest.approx(0.75) and iou[0, 0, 4] == pytest.approx(1 / 3)
    segments, local = torch.zeros(1, 2, 3), torch.zeros(1, 20, 3)
    _, by_iou = segment_matching_loss(segments, local, "mean", "overlap", iou)
    _, inside = segment_matching_loss(segments, local, "mean", "inside", share)
    assert by_iou[0, 0].item() == 0  # the 8 px cell, a quarter of which is not the segment
    assert inside[0, 0].item() == 4  # a 4 px cell wholly inside the segment


def test_dense_rank_equals_hand_computed_value():
    # t_1 = (1, 0), t_2 = (0, 1); both student patches at (1, 0): patch 1 ranks as its teacher
    # (KL 0); patch 2 has teacher logits (0, 1) / T and student logits (1, 0) / T: with a = 1 / T,
    # q = (1, e^a) / (1 + e^a), s = (e^a, 1) / (1 + e^a), KL = a (q_2 - q_1) = a tanh(a / 2);
    # mean over the two patches
    targets = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    composed = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])  # norms do not matter
    for temperature in (0.5, 1.0, 0.05):
        loss = dense_rank_loss(composed, targets, temperature)
        assert loss.item() == pytest.approx(
            math.tanh(0.5 / temperature) / temperature / 2, rel=1e-5
        )


def test_dense_rank_is_the_kl_of_torch_distributions():
    torch.manual_seed(0)
    composed, targets = torch.randn(3, 7, 16), torch.randn(3, 7, 16)
    vocabulary = torch.randn(3, 29, 16)
    normal = torch.nn.functional.normalize
    for vocab in (None, vocabulary):
        u = normal(targets if vocab is None else vocab, dim=-1)
        teacher = torch.distributions.Categorical(
            logits=normal(targets, dim=-1) @ u.transpose(1, 2) / 0.05
        )
        student = torch.distributions.Categorical(
            logits=normal(composed, dim=-1) @ u.transpose(1, 2) / 0.05
        )
        expected = torch.distributions.kl_divergence(teacher, student).mean()
        assert torch.allclose(dense_rank_loss(composed, targets, 0.05, vocab), expected, atol=1e-5)


def test_dense_rank_is_zero_at_the_targets_and_positive_elsewhere():
    torch.manual_seed(0)
    targets = torch.randn(2, 6, 8)
    assert dense_rank_loss(2 * targets, targets, 0.05).item() < 1e-6  # scale-free
    assert dense_rank_loss(torch.randn(2, 6, 8), targets, 0.05).item() > 0
    # sharper temperature, larger penalty for the same mistake
    wrong = torch.randn(2, 6, 8)
    assert dense_rank_loss(wrong, targets, 0.02) > dense_rank_loss(wrong, targets, 0.5)


def _dense_kwargs(visible: int = 4):
    torch.manual_seed(0)
    return dict(
        images=torch.rand(2, 3, 8, 8),
        reconstruction=None,
        mask=torch.ones(2, 4),
        segments=torch.randn(2, 3, 5, requires_grad=True),
        global_embedding=torch.randn(2, 5),
        views=torch.randn(2, 5, 5),
        patch_size=4,
        student_normalize=lambda x: x,
        soft_assignments=[torch.randn(2, visible, 3, requires_grad=True)],
        dense_targets=torch.randn(2, visible, 5),
    )


def test_dense_rank_term_enters_the_total_and_trains_segments_and_maps():
    kwargs = _dense_kwargs()
    maps = kwargs["soft_assignments"][0]
    kwargs["soft_assignments"] = [maps.softmax(-1)]
    off = zeroseg_losses(LossConfig(), **kwargs)
    assert "dense_rank_loss" not in off and "dense_loss" not in off
    cfg = LossConfig(dense_rank_weight=2.0, dense_rank_temperature=0.1)
    on = zeroseg_losses(cfg, **kwargs)
    assert "dense_loss" not in on  # the rank term alone, without the L1 dense term
    composed = kwargs["soft_assignments"][0] @ torch.nn.functional.normalize(
        kwargs["segments"], dim=-1
    )
    expected = dense_rank_loss(composed, kwargs["dense_targets"], 0.1)
    assert torch.allclose(on["dense_rank_loss"], expected)
    assert torch.allclose(on["loss"], off["loss"] + 2.0 * expected)
    on["dense_rank_loss"].backward()
    assert kwargs["segments"].grad.abs().sum() > 0 and maps.grad.abs().sum() > 0
    both = zeroseg_losses(LossConfig(dense_weight=1.0, dense_rank_weight=1.0), **kwargs)
    assert {"dense_loss", "dense_rank_loss"} <= set(both)
    views = zeroseg_losses(
        LossConfig(dense_rank_weight=1.0, dense_rank_vocabulary="views"), **kwargs
    )
    by_views = dense_rank_loss(composed, kwargs["dense_targets"], 0.05, kwargs["views"][:, 1:])
    assert torch.allclose(views["dense_rank_loss"], by_views)


def test_dense_rank_ranks_among_the_visible_patches_only():
    # the maps' rows are the visible patches: 3 of 4 visible; a target at a hidden patch is not
    # handed in (task._at_visible), so the term equals the one computed on the visible rows alone
    kwargs = _dense_kwargs(visible=3)
    kwargs["soft_assignments"] = [kwargs["soft_assignments"][0].detach().softmax(-1)]
    out = zeroseg_losses(LossConfig(dense_rank_weight=1.0), **kwargs)
    composed = kwargs["soft_assignments"][0] @ torch.nn.functional.normalize(
        kwargs["segments"], dim=-1
    )
    expected = dense_rank_loss(composed, kwargs["dense_targets"], 0.05)
    assert torch.allclose(out["dense_rank_loss"], expected)


@pytest.mark.parametrize(
    "field, value",
    [("dense_rank_weight", -1.0), ("dense_rank_temperature", 0.0),
     ("dense_rank_temperature", float("inf"))],
)  # fmt: skip
def test_dense_rank_settings_are_validated(field, value):
    with pytest.raises(Exception, match=field):
        LossConfig(**{field: value})


def test_either_dense_weight_asks_for_the_dense_targets():
    assert not LossConfig().uses_dense_targets
    assert LossConfig(dense_weight=1.0).uses_dense_targets
    assert LossConfig(dense_rank_weight=1.0).uses_dense_targets
