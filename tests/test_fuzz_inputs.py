"""Property tests: whatever a user types as class names or overrides, the answer is a result or a
one-line ZeroSegError, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroseg.config import ExperimentConfig, resolve_config
from zeroseg.errors import ZeroSegError
from zeroseg.inference.segmenter import InferenceConfig
from zeroseg.inference.text_queries import parse_class_list

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=60
)  # any unicode, including commas, bars, newlines and spaces
KEYS = st.sampled_from([
    "encoder.mask_ratio", "optim.batch_size", "optim.micro_batch_size", "train.steps",
    "train.checkpoint_every", "loss.matching", "loss.dense_weight", "teacher.grids",
    "seg_head.num_group_tokens", "data.root", "nope", "encoder", "encoder.nope.deeper", "",
])  # fmt: skip
INFERENCE_KEYS = st.sampled_from([
    "short_side", "window", "stride", "bg_threshold", "mode", "pamr_steps", "pamr_dilations",
    "templates", "logit_scale", "top_k_classes", "resize", "unknown",
])  # fmt: skip
VALUES = st.one_of(
    TEXT, st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(str),
    st.sampled_from(["[1, 2]", "[]", "{a: 1}", "null", "true", "1e309", "-0.5", "1.0", "[[1]]"]),
)  # fmt: skip


def _one_line(error: ZeroSegError) -> None:
    assert str(error).strip() and "\n" not in str(error).strip()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_class_lists(text):
    try:
        classes = parse_class_list(text)
    except ZeroSegError as error:
        _one_line(error)
        return
    names = [c if isinstance(c, str) else c[0] for c in classes]
    assert names and all(n and n == n.strip() for n in names)
    assert len({n.lower() for n in names}) == len(names)


@pytest.mark.parametrize("cls, keys", [(ExperimentConfig, KEYS), (InferenceConfig, INFERENCE_KEYS)])
def test_overrides(cls, keys):
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(keys, VALUES), min_size=1, max_size=3))
    def check(pairs):
        overrides = [f"{k}={v}" for k, v in pairs]
        try:
            resolve_config(cls, overrides=overrides)
        except ZeroSegError as error:
            _one_line(error)

    check()
