"""The caption teacher the package ships: it loads, it is the default config's teacher of this
world version, and it still names held-out scenes and grid cells as its record says."""

import json

import pytest

from zeroseg.synthetic.caption_clip import (
    CaptionCLIPConfig,
    load_caption_clip,
    matches,
    quick_check,
    shipped_teacher,
)
from zeroseg.synthetic.scenes import WORLD_VERSION

WEIGHTS = shipped_teacher()
pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(), reason="no shipped teacher in this tree")


def test_the_shipped_teacher_is_the_default_config_of_this_world():
    meta = json.loads(WEIGHTS.with_name("teacher.json").read_text())
    assert meta["world_version"] == WORLD_VERSION
    assert matches(WEIGHTS, CaptionCLIPConfig())
    assert WEIGHTS.suffix == ".safetensors" and WEIGHTS.stat().st_size < 20 * 2**20  # float16
    assert set(meta["view_accuracy"]) == {"2x2", "3x3", "4x4"}


def test_the_shipped_teacher_gives_its_recorded_accuracy():
    model, tokenizer, meta = load_caption_clip(WEIGHTS)
    check = quick_check(model, tokenizer, CaptionCLIPConfig())
    recorded = meta["check"]
    for key in ("objects", "backgrounds"):
        assert check["zero_shot"][key] == pytest.approx(recorded["zero_shot"][key], abs=0.03)
    for grid, values in recorded["views"].items():  # cells named right, within two cells
        for key, cells in (("objects", "object_cells"), ("stuff", "stuff_cells")):
            assert check["views"][grid][cells] == values[cells]
            right = round(check["views"][grid][key] * values[cells])
            assert abs(right - round(values[key] * values[cells])) <= 2, (grid, key)
