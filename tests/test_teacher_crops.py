import torch

from zeroseg.config import load_config
from zeroseg.inference.crop_segmenter import GridCropSegmenter, SlidingCropSegmenter
from zeroseg.models.teacher import build_teacher


def _teacher():
    return build_teacher(load_config("tiny").teacher)


def test_grid_cells_take_their_crop_classification():
    teacher = _teacher()
    seg = GridCropSegmenter(teacher, grid=2, templates="simple1")
    seg.set_vocabulary(["cat", "dog", "tree"])
    image = torch.rand(3, 40, 60)
    result = seg.predict(image)
    assert result.labels.shape == (40, 60) and result.scores.shape == (3, 40, 60)
    cell = image[:, 20:40, 30:60].unsqueeze(0)  # bottom-right cell
    expected = seg.vocabulary.probabilities(teacher.encode_images(cell), 100.0)[0]
    assert torch.allclose(result.scores[:, 30, 45], expected, atol=1e-5)
    assert torch.allclose(
        result.scores[:, 21:40, 31:60], expected[:, None, None].expand(3, 19, 29), atol=1e-5
    )


def test_sliding_windows_cover_every_pixel_and_average():
    seg = SlidingCropSegmenter(_teacher(), window=0.5, stride=0.25, templates="simple1")
    boxes = seg.boxes(40, 70)
    cover = torch.zeros(40, 70)
    for y0, y1, x0, x1 in boxes:
        assert (y1 - y0, x1 - x0) == (20, 20)
        cover[y0:y1, x0:x1] += 1
    assert cover.min() >= 1
    seg.set_vocabulary(["cat", "dog"], background=True)
    result = seg.predict(torch.rand(3, 40, 70))
    assert result.class_names == ["background", "cat", "dog"]
    assert torch.allclose(result.scores[1:].sum(0), torch.ones(40, 70), atol=1e-4)
