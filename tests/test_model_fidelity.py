"""Settings compared with the reference code: GroupViT's head, MAE's decoder, GroupViT's projector."""

import pytest
import torch
from torch import nn

from zeroseg.config import load_config
from zeroseg.models.build import build_zeroseg
from zeroseg.models.grouping import GroupingBlock
from zeroseg.models.seg_head import Projector


def _layer_norm_eps(module: nn.Module) -> set[float]:
    return {m.eps for m in module.modules() if isinstance(m, nn.LayerNorm)}


def test_layer_norm_eps_follow_groupvit_and_mae():
    config = load_config("tiny")
    model = build_zeroseg(config.encoder, config.seg_head, config.decoder)
    assert _layer_norm_eps(model.seg_head) == {1e-5}  # GroupViT: nn.LayerNorm everywhere
    assert _layer_norm_eps(model.decoder) == {1e-6}  # MAE: partial(nn.LayerNorm, eps=1e-6)
    assert _layer_norm_eps(model.encoder) == {1e-6}  # MAE's encoder (timm's default)
    other = load_config("tiny", ["seg_head.norm_eps=1e-6", "decoder.norm_eps=1e-5"])
    model = build_zeroseg(other.encoder, other.seg_head, other.decoder)
    assert _layer_norm_eps(model.seg_head) == {1e-6} and _layer_norm_eps(model.decoder) == {1e-5}


def groupvit_project_mlp(projector: Projector, x: torch.Tensor) -> torch.Tensor:
    """GroupViT's ProjectMLP forward with the projector's weights: 1x1 Conv1d - BN - ReLU - Conv1d
    over (B, C, L), a (B, C) input taken as L = 1."""
    net = projector.net
    hidden = nn.Conv1d(net.hidden.in_features, net.hidden.out_features, 1)
    out = nn.Conv1d(net.out.in_features, net.out.out_features, 1)
    hidden.weight.data = net.hidden.weight.data[..., None]
    hidden.bias.data = net.hidden.bias.data
    out.weight.data = net.out.weight.data[..., None]
    out.bias.data = net.out.bias.data
    norm = nn.BatchNorm1d(net.norm.num_features)
    norm.load_state_dict(net.norm.state_dict())
    norm.train(projector.training)
    squeeze = x.ndim == 2
    if squeeze:
        x = x.unsqueeze(1)
    y = out(torch.relu(norm(hidden(x.transpose(1, 2))))).transpose(1, 2)
    return y.squeeze(1) if squeeze else y


@pytest.mark.parametrize("shape", [(4, 8, 16), (4, 16)])
@pytest.mark.parametrize("training", [True, False])
def test_groupvit_projector_is_groupvits_project_mlp(shape, training):
    torch.manual_seed(0)
    projector = Projector(16, 32, 12, kind="groupvit").train(training)
    if not training:  # running statistics that are not the initial ones
        projector.net.norm.running_mean.normal_()
        projector.net.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(*shape)
    expected = groupvit_project_mlp(projector, x)
    assert torch.allclose(projector(x), expected, atol=1e-5)


def test_the_default_projector_is_linear_gelu_linear():
    net = Projector(16, 32, 12).net
    assert [type(m) for m in net] == [nn.Linear, nn.GELU, nn.Linear]
    config = load_config("tiny", ["seg_head.projector=groupvit"])
    head = build_zeroseg(config.encoder, config.seg_head, None).seg_head
    assert isinstance(head.projector.net.norm, nn.BatchNorm1d)


@pytest.mark.parametrize("hard", [True, False])
def test_evaluation_pools_with_the_assignment_the_config_names(hard):
    torch.manual_seed(0)
    block = GroupingBlock(16, 2, 4, 4, hard=hard, gumbel=True).eval()
    _, assignment, soft = block(torch.randn(2, 10, 16), torch.randn(2, 4, 16))
    if hard:  # GroupViT's hard_softmax: one-hot argmax of the soft map
        assert torch.equal(assignment.argmax(-1), soft.argmax(-1))
        assert set(assignment.unique().tolist()) == {0.0, 1.0}
    else:  # GroupViT evaluates hard=False heads with the plain softmax
        assert torch.allclose(assignment, soft)
        assert (assignment < 0.99).all()
