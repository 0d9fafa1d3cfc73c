"""Banded bilinear enlargement: equal to PyTorch's bilinear resize, and labels without the full map."""

import torch
import torch.nn.functional as F

from zeroseg.inference.banded import banded_argmax, bilinear, bilinear_rows


def test_bilinear_equals_torch_interpolate():
    scores = torch.randn(5, 7, 11, generator=torch.Generator().manual_seed(0))
    for size in ((7, 11), (30, 45), (8, 10), (3, 4), (100, 13), (1, 1)):
        ours = bilinear(scores, size)
        torch_ = F.interpolate(scores[None], size, mode="bilinear", align_corners=False)[0]
        assert torch.allclose(ours, torch_, atol=1e-5), size
    assert torch.equal(bilinear(scores, (7, 11)), scores)  # same size: an exact copy


def test_bands_are_slices_of_the_whole_and_labels_agree():
    scores = torch.randn(4, 9, 6, generator=torch.Generator().manual_seed(1))
    whole = bilinear(scores, (61, 40))
    assert torch.equal(bilinear_rows(scores, (61, 40), 17, 33), whole[:, 17:33])
    assert torch.equal(banded_argmax(scores, (61, 40), band=7), whole.argmax(0))
