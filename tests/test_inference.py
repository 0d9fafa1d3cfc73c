import pytest
import torch

from zeroseg.errors import ZeroSegError
from zeroseg.inference.segmenter import InferenceConfig, Segmenter
from zeroseg.inference.text_queries import parse_class_list


@pytest.fixture(scope="module")
def segmenter(tiny_run):
    seg = Segmenter.from_checkpoint(tiny_run, InferenceConfig(short_side=64, window=64, stride=32))
    seg.set_vocabulary(["red square", "green field", ["blue sky", "sky"]])
    return seg


def test_output_has_the_input_size(segmenter):
    for shape in ((3, 50, 70), (3, 64, 64), (3, 17, 200)):
        result = segmenter.predict(torch.rand(*shape))
        assert result.labels.shape == shape[1:] and result.labels.dtype == torch.int64
        assert result.scores.shape == (3, *shape[1:])
        assert result.class_names == ["red square", "green field", "blue sky"]


def test_sliding_window_equals_whole_image_when_it_fits(segmenter):
    image = torch.rand(3, 64, 64)
    whole = segmenter.with_config(mode="whole").predict(image)
    slide = segmenter.with_config(mode="slide", window=64, stride=32).predict(image)
    assert torch.equal(whole.labels, slide.labels)
    assert torch.allclose(whole.scores, slide.scores)


def test_sliding_window_covers_long_images(segmenter):
    result = segmenter.with_config(mode="slide", short_side=32, window=32, stride=16).predict(
        torch.rand(3, 40, 300)
    )
    assert result.labels.shape == (40, 300) and torch.isfinite(result.scores).all()


def test_whole_mode_labels_follow_segments(segmenter):
    result = segmenter.with_config(mode="whole").predict(torch.rand(3, 64, 64))
    for s in result.segment_ids.unique():
        pixels = result.labels[result.segment_ids == s]
        assert (pixels == result.segment_classes[s]).all()


def test_background_threshold_rule(segmenter):
    segmenter = segmenter.with_config(mode="whole")
    segmenter.set_vocabulary(["a", "b"], background=True)
    image = torch.rand(3, 64, 64)
    always = segmenter.with_config(bg_threshold=1.0).predict(image)  # capped at the best score
    never = segmenter.with_config(bg_threshold=0.0).predict(image)
    assert always.class_names[0] == "background"
    assert (never.labels > 0).all()
    fg_best = always.scores[1:].max(0).values
    assert torch.equal(always.labels == 0, fg_best < fg_best.max())


def test_top_k_restriction_limits_classes(segmenter):
    seg = segmenter.with_config(mode="whole", top_k_classes=1)
    seg.set_vocabulary(["a", "b", "c", "d"])
    result = seg.predict(torch.rand(3, 64, 64))
    assert len(result.segment_classes.unique()) == 1


def test_class_list_validation():
    assert parse_class_list("cat, dog ,grass") == ["cat", "dog", "grass"]
    for bad in ("", "cat,,dog", "cat, Cat"):
        with pytest.raises(ZeroSegError):
            parse_class_list(bad)


def test_predict_needs_a_vocabulary(tiny_run):
    with pytest.raises(ZeroSegError, match="set_vocabulary"):
        Segmenter.from_checkpoint(tiny_run).predict(torch.rand(3, 32, 32))
