import torch

from zeroseg.models.grouping import GroupingBlock, assign, compose_assignments
from zeroseg.models.seg_head import SegmentationHead


def head():
    return SegmentationHead(32, 32, 2, (1, 1, 1), (8, 4), out_dim=16, projector_hidden=24)


def _check_one_hot(maps):
    assert torch.all((maps == 0) | (maps == 1))
    assert torch.allclose(maps.sum(-1), torch.ones(maps.shape[:-1]))


def test_training_and_eval_assignments_are_one_hot_and_soft_maps_sum_to_one():
    model = head()
    tokens = torch.randn(2, 20, 32)
    for training in (True, False):
        model.train(training)
        out = model(tokens)
        assert [a.shape for a in out.assignments] == [(2, 20, 8), (2, 8, 4)]
        for hard, soft in zip(out.assignments, out.soft_assignments):
            _check_one_hot(hard.detach())
            assert torch.allclose(soft.sum(-1), torch.ones(soft.shape[:-1]), atol=1e-5)
        assert out.segment_embeddings.shape == (2, 4, 16)
        assert out.global_embedding.shape == (2, 16)


def test_eval_assignment_is_deterministic_argmax_of_soft_map():
    model = head().eval()
    out1 = model(torch.ones(1, 20, 32) + torch.randn(1, 20, 32))
    for hard, soft in zip(out1.assignments, out1.soft_assignments):
        assert torch.equal(hard.argmax(-1), soft.argmax(-1))


def test_straight_through_gradient_reaches_logits():
    logits = torch.randn(3, 5, requires_grad=True)
    hard, _ = assign(logits, dim=0, hard=True, gumbel=True, tau=1.0)
    _check_one_hot(hard.detach().T)
    (hard * torch.arange(5.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_grouping_block_shapes():
    block = GroupingBlock(32, 2, num_group_tokens=8, num_output_groups=8)
    segments, attn, soft = block(torch.randn(2, 30, 32), torch.randn(2, 8, 32))
    assert segments.shape == (2, 8, 32) and attn.shape == soft.shape == (2, 30, 8)


def test_composed_maps_chain_the_stages_and_sum_to_one():
    model = head().eval()
    out = model(torch.randn(2, 20, 32))
    composed = compose_assignments(out.soft_assignments)
    assert composed.shape == (2, 20, 4)
    assert torch.allclose(composed.sum(-1), torch.ones(2, 20), atol=1e-5)
    expected = out.soft_assignments[0][0, 3] @ out.soft_assignments[1][0]
    assert torch.allclose(composed[0, 3], expected)
