import pytest

from zeroseg.config import ExperimentConfig, from_dict, load_config, preset_names, to_dict
from zeroseg.errors import ZeroSegError


def test_presets_load_and_match_the_paper():
    assert {"paper", "tiny"} <= set(preset_names())
    paper = load_config("paper")
    assert paper.encoder.mask_ratio == 0.6 and paper.encoder.patch_size == 16
    assert paper.decoder.depth == 8
    assert paper.seg_head.depths == (2, 2, 1) and paper.seg_head.num_group_tokens == (32, 8)
    assert paper.teacher.model == "ViT-L-14" and paper.teacher.pretrained == "openai"
    assert paper.teacher.grids == (1, 2, 3, 4)
    assert paper.optim.base_lr == 1.5e-4 and paper.optim.batch_size == 4096
    assert (paper.optim.epochs, paper.optim.warmup_epochs) == (80, 20)


def test_overrides_are_typed():
    config = load_config(
        "tiny", ["optim.base_lr=1e-3", "teacher.grids=[1,3]", "loss.normalize=false"]
    )
    assert config.optim.base_lr == 1e-3 and isinstance(config.optim.base_lr, float)
    assert config.teacher.grids == (1, 3)
    assert config.loss.normalize is False


@pytest.mark.parametrize(
    "override",
    ["optim.nope=1", "encoder.depth=abc", "loss.distillation_views=half", "loss.normalize=3", "x"],
)
def test_bad_overrides_are_one_line_errors(override):
    with pytest.raises(ZeroSegError) as error:
        load_config("tiny", [override])
    assert "\n" not in str(error.value)


def test_unknown_preset():
    with pytest.raises(ZeroSegError, match="unknown preset"):
        load_config("nonexistent")


def test_round_trip_through_plain_dict():
    config = load_config("tiny")
    assert from_dict(to_dict(config)) == config
    assert from_dict({}) == ExperimentConfig()
