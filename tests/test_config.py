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


def test_every_config_is_frozen_and_resolved_through_one_function(tmp_path):
    import dataclasses

    from zeroseg.config import resolve_config
    from zeroseg.inference.segmenter import InferenceConfig
    from zeroseg.synthetic.caption_clip import CaptionCLIPConfig
    from zeroseg.synthetic.demo import DemoConfig

    for config in (load_config("tiny"), InferenceConfig(), DemoConfig(), CaptionCLIPConfig()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.seed = 1  # type: ignore[misc]
    demo = resolve_config(
        DemoConfig, overrides=[f"out_dir={tmp_path}", "steps=7", "teacher.views_per_scene=2"]
    )
    assert demo.out_dir == tmp_path and demo.steps == 7 and demo.teacher.views_per_scene == 2
    preset = tmp_path / "protocol.yaml"
    preset.write_text("mode: slide\nwindow: 336\n")
    inference = resolve_config(InferenceConfig, preset, ["stride=112"])
    assert (inference.mode, inference.window, inference.stride) == ("slide", 336, 112)
    base = InferenceConfig(short_side=448, top_k_classes=5)
    assert resolve_config(InferenceConfig, overrides=["short_side=null"], base=base) == (
        InferenceConfig(short_side=None, top_k_classes=5)
    )


@pytest.mark.parametrize(
    "override, named",
    [
        ("bg_threshold=high", "bg_threshold"),
        ("short_side=abc", "short_side"),
        ("stride=600", "stride"),  # larger than the window
        ("logit_scale=0", "logit_scale"),
        ("resize=nearest", "resize"),
    ],
)
def test_inference_overrides_are_checked(override, named):
    from zeroseg.config import resolve_config
    from zeroseg.inference.segmenter import InferenceConfig

    with pytest.raises(ZeroSegError, match=named) as error:
        resolve_config(InferenceConfig, overrides=["window=448", override])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "override",
    [
        "encoder.mask_ratio=1.0",
        "encoder.mask_ratio=-0.5",
        "optim.batch_size=0",
        "optim.micro_batch_size=-2",
        "train.checkpoint_every=0",
        "train.steps=-5",
        "loss.matching_weight=-1",
    ],
)
def test_out_of_range_values_are_refused(override):
    key = override.split("=")[0].split(".")[-1]
    with pytest.raises(ZeroSegError, match=key):
        load_config("tiny", [override])


def test_model_defaults_fill_the_unset_inference_sizes():
    from zeroseg.inference.segmenter import InferenceConfig

    config = InferenceConfig().with_model_defaults(224)
    assert (config.short_side, config.window, config.stride) == (224, 224, 112)
    kept = InferenceConfig(short_side=0, mode="slide", window=96).with_model_defaults(64)
    assert (kept.short_side, kept.window, kept.stride) == (0, 96, 48)


def test_a_saved_config_with_removed_options_at_their_old_values_still_loads():
    from zeroseg.config import saved_experiment_config, to_dict

    saved = to_dict(load_config("tiny"))
    saved["seg_head"].update(cross_attention=True, group_residual=True)
    saved["teacher"]["dense_readout"] = "maskclip"
    saved["loss"].update(matching_objective="l1", matching_temperature=0.1, dense_level="patch")
    saved["loss"]["grouping_balance"] = "image"
    assert saved_experiment_config(saved) == load_config("tiny")


@pytest.mark.parametrize(
    "section, key, value",
    [("loss", "matching_objective", "contrastive"), ("loss", "matching", "bidirectional"),
     ("loss", "dense_gradient", "projector"), ("seg_head", "group_residual", False)],
)  # fmt: skip
def test_a_saved_config_that_used_a_removed_option_is_a_one_line_error(section, key, value):
    from zeroseg.config import saved_experiment_config, to_dict

    saved = to_dict(load_config("tiny"))
    saved[section][key] = value
    with pytest.raises(ZeroSegError, match=f"{section}.{key}={value}.*removed") as error:
        saved_experiment_config(saved)
    assert "\n" not in str(error.value)


def test_ranking_against_views_needs_local_views():
    with pytest.raises(ZeroSegError, match="needs teacher.grids beyond"):
        load_config("synthetic", ["teacher.grids=[1]"])
    config = load_config("synthetic", ["teacher.grids=[1]", "loss.dense_rank_vocabulary=patches"])
    assert config.teacher.grids == (1,)
    assert load_config("synthetic", ["teacher.grids=[1,2]"]).loss.dense_rank_vocabulary == "views"
