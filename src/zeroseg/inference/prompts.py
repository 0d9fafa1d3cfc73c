"""Prompt template sets for turning class names into text queries (open_clip ships the lists).

- ``imagenet80``: the 80 OpenAI CLIP ImageNet templates (default; SCLIP family, MaskCLIP).
- ``subset7``: the 7-template subset (GroupViT's ImageNet evaluation).
- ``simple1``: "a photo of a {}." (GroupViT's segmentation default).
"""

from __future__ import annotations

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

from zeroseg.errors import ZeroSegError

TEMPLATE_SETS = ("imagenet80", "subset7", "simple1")


def get_templates(name: str) -> list[str]:
    """Templates of a named set, as format strings with one ``{}`` for the class name."""
    if name == "imagenet80":
        return [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]
    if name == "subset7":
        return [t("{}") for t in SIMPLE_IMAGENET_TEMPLATES]
    if name == "simple1":
        return ["a photo of a {}."]
    raise ZeroSegError(f"unknown template set {name!r}: use one of {', '.join(TEMPLATE_SETS)}")
