"""``InferenceConfig.pixel_readout``: the paper's segment labels, or each pixel's composed embedding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zeroseg.errors import ZeroSegError
from zeroseg.inference.config import InferenceConfig
from zeroseg.inference.segmenter import Segmenter, release_inference
from zeroseg.models.grouping import compose_assignments

CLASSES = ["red square", "green field", ["blue sky", "sky"]]


@pytest.fixture(scope="module")
def student(tiny_run):
    config = InferenceConfig(short_side=0, mode="whole", templates="simple1", bg_threshold=0.0)
    segmenter = Segmenter.from_checkpoint(tiny_run, config, device="cpu")
    segmenter.set_vocabulary(CLASSES)
    return segmenter


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(seed))


def _rederived(student: Segmenter, image: torch.Tensor) -> torch.Tensor:
    """(K, h, w): maps @ normalised g at the token grid, cosine to the text, x scale, enlarged,
    softmax over the queries, max over each class's synonyms."""
    model, vocab = student.model, student._queries
    with torch.no_grad():
        out, grid = model.encode_segments(image[None])
    maps = compose_assignments(out.soft_assignments)[0]  # (N, S)
    pixels = F.normalize(maps @ F.normalize(out.segment_embeddings[0], dim=-1), dim=-1)
    logits = student.config.logit_scale * pixels @ vocab.text.T  # (N, Q)
    logits = logits.T.reshape(-1, *grid)[None]
    logits = F.interpolate(logits, image.shape[-2:], mode="bilinear", align_corners=False)[0]
    probs = logits.softmax(0)
    columns = [probs[vocab.query_class == k].max(0).values for k in range(vocab.num_classes)]
    return torch.stack(columns)


def test_composed_scores_equal_a_rederivation(student):
    composed = student.with_config(pixel_readout="composed")
    composed.set_vocabulary(CLASSES)
    image = _image()
    with torch.no_grad():
        scores = composed.window_scores(image[None])
    assert scores.shape == (3, 64, 80)
    torch.testing.assert_close(scores, _rederived(composed, image), atol=1e-5, rtol=1e-5)


def test_segments_readout_gives_each_segment_one_class_and_composed_does_not_need_to(student):
    composed = student.with_config(pixel_readout="composed")
    composed.set_vocabulary(CLASSES)
    image = _image(1)
    with torch.no_grad():
        hard, segments, _ = student.window_outputs(image[None])
        soft, same_segments, _ = composed.window_outputs(image[None])
    assert torch.equal(segments, same_segments)  # the segment map is the readout's, unchanged
    labels = hard.argmax(0)
    for segment in segments.unique():  # the paper's readout: one class per segment
        assert labels[segments == segment].unique().numel() == 1
    assert not torch.equal(hard, soft)


def test_pixel_readout_as_a_release_or_the_cli_sets_it():
    assert release_inference({"pixel_readout": "composed"}).pixel_readout == "composed"
    with pytest.raises(ZeroSegError, match="pixel_readout") as error:
        release_inference({"pixel_readout": "blend"})
    assert "\n" not in str(error.value)
