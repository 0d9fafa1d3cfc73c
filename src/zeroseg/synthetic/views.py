"""How the synthetic teacher sees images and how well it names them.

``preprocess`` resizes views to the teacher's input as the ZeroSeg teacher does (bicubic,
antialiased) and applies OpenAI CLIP's normalisation; ``zero_shot_accuracy`` classifies whole
single-object scenes, ``view_accuracy`` grid cells of held-out scenes per scale (the views the
student is distilled from).
"""

from __future__ import annotations

import numpy as np
import open_clip
import torch
from torch import Tensor

from zeroseg.models.teacher import resize_views
from zeroseg.synthetic.crops import GRIDS, grid_cells
from zeroseg.synthetic.scenes import (
    CLASS_NAMES,
    NUM_STUFF,
    OBJECT_CLASSES,
    STUFF_CLASSES,
    generate_scene,
    single_object_set,
)

_MEAN = torch.tensor(open_clip.constants.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(open_clip.constants.OPENAI_DATASET_STD).view(1, 3, 1, 1)


def preprocess(images: Tensor, image_size: int) -> Tensor:
    """(B, 3, H, W) [0,1] float (or (B, H, W, 3) uint8) -> CLIP-normalised (B, 3, S, S)."""
    if images.dtype == torch.uint8:
        images = images.permute(0, 3, 1, 2).float().div_(255)
    images = resize_views(images, image_size)
    return ((images - _MEAN) / _STD).contiguous(memory_format=torch.channels_last)


def input_size(model: open_clip.CLIP) -> int:
    """The square input size of an open_clip model's image tower."""
    size = model.visual.image_size
    return int(size[0] if isinstance(size, tuple | list) else size)


def image_features(model: open_clip.CLIP, images: Tensor, batch_size: int = 256) -> Tensor:
    """(N, H, W, 3) uint8 or (N, 3, H, W) [0,1] images -> (N, D) normalised embeddings."""
    size = input_size(model)
    chunks = images.split(batch_size)
    return torch.cat([model.encode_image(preprocess(c, size), normalize=True) for c in chunks])


@torch.no_grad()
def zero_shot_accuracy(
    model: open_clip.CLIP,
    tokenizer,
    num_images: int = 400,
    seed: int = 1234,
    scene_size: int = 64,
    template: str = "a photo of a {}.",
    batch_size: int = 200,
) -> dict[str, float]:
    """Zero-shot classification of single-object scenes, objects and backgrounds separately.

    Objects are classified over ``OBJECT_CLASSES`` and backgrounds over ``STUFF_CLASSES``, each
    class name put in ``template``; the model must be in eval mode.

    Returns:
        ``{"objects": accuracy, "backgrounds": accuracy}`` in [0, 1].
    """
    images, objects, backgrounds = single_object_set(num_images, seed, scene_size)
    features = image_features(model, torch.from_numpy(images), batch_size)
    result = {}
    for key, names, truth in (
        ("objects", OBJECT_CLASSES, objects),
        ("backgrounds", STUFF_CLASSES, backgrounds),
    ):
        texts = model.encode_text(tokenizer([template.format(n) for n in names]), normalize=True)
        predicted = (features @ texts.T).argmax(dim=1).numpy()
        result[key] = float((predicted == truth).mean())
    return result


@torch.no_grad()
def view_accuracy(
    model: open_clip.CLIP,
    tokenizer,
    num_scenes: int = 200,
    seed: int = 4321,
    scene_size: int = 64,
    template: str = "a photo of a {}.",
    grids: tuple[int, ...] = GRIDS,
) -> dict[str, dict[str, float | None]]:
    """Zero-shot labels of grid cells of held-out scenes, per grid scale.

    Each cell is classified over all ``CLASS_NAMES`` (``template``); it is right when the class is
    the cell's majority class. Object-majority and stuff-majority cells are counted apart.

    Returns:
        ``{"2x2": {"objects", "stuff", "object_cells", "stuff_cells"}, ...}``, accuracies in [0, 1].
    """
    image_size = input_size(model)
    texts = model.encode_text(tokenizer([template.format(n) for n in CLASS_NAMES]), normalize=True)
    scenes = [generate_scene(seed, i, scene_size) for i in range(num_scenes)]
    result = {}
    for grid in grids:
        crops, truth = [], []
        for scene in scenes:
            pixels = torch.from_numpy(scene.image).permute(2, 0, 1)[None].float() / 255
            for y0, y1, x0, x1 in grid_cells(scene_size, grid):
                crops.append(resize_views(pixels[:, :, y0:y1, x0:x1], image_size))
                counts = np.bincount(scene.labels[y0:y1, x0:x1].ravel(), minlength=len(CLASS_NAMES))
                truth.append(int(counts.argmax()))
        features = image_features(model, torch.cat(crops))
        predicted = (features @ texts.T).argmax(dim=1).numpy()
        truth_array = np.array(truth)
        is_object = truth_array >= NUM_STUFF
        right = predicted == truth_array
        result[f"{grid}x{grid}"] = {
            "objects": round(float(right[is_object].mean()), 4) if is_object.any() else None,
            "stuff": round(float(right[~is_object].mean()), 4) if (~is_object).any() else None,
            "object_cells": int(is_object.sum()),
            "stuff_cells": int((~is_object).sum()),
        }
    return result
