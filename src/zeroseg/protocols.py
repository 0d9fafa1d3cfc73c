"""Named evaluation protocols: the inference settings and class-name flavour per benchmark.

- ``zeroseg`` (default, for comparison with the ZeroSeg paper): short side 448 with a 2048 cap,
  sliding 448 windows with stride 224, CLIP's logit scale 100, the paper's background thresholds
  VOC 0.95 / Context 0.05 / COCO-Object 0.35, no top-k restriction, the 80 ImageNet templates,
  GroupViT class names.
- ``groupvit``: GroupViT's released code: the same geometry, thresholds 0.95 / 0.35 / 0.95, the
  image-level top-5 class restriction and the single template "a photo of a {}.".
- ``sclip`` (for comparison with training-free CLIP methods): short side 336, sliding 224 windows
  with stride 112, logit scale 65 on VOC21, 50 on Context60 and COCO-Object, 40 elsewhere, a 0.1
  probability threshold on background datasets only, SCLIP's class names with synonyms and
  background words. Not reproduced: SCLIP's VOC21 ``area_thd`` (dropping classes under 10 % of the
  predicted foreground) and its un-capped threshold (ours is capped at the image's best score).

Background-free datasets (voc20, context59) get ``bg_threshold = 0``: no threshold is involved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zeroseg.errors import ZeroSegError

if TYPE_CHECKING:
    from zeroseg.inference import InferenceConfig

PRESETS = ("zeroseg", "groupvit", "sclip")
DATASETS = ("voc", "voc20", "context", "context59", "coco-object")

_GROUPVIT_GEOMETRY = {"short_side": 448, "mode": "slide", "window": 448, "stride": 224}
_GEOMETRY = {
    "zeroseg": _GROUPVIT_GEOMETRY,
    "groupvit": _GROUPVIT_GEOMETRY,
    "sclip": {"short_side": 336, "mode": "slide", "window": 224, "stride": 112},
}
_BG_THRESHOLD = {
    "zeroseg": {"voc": 0.95, "context": 0.05, "coco-object": 0.35},
    "groupvit": {"voc": 0.95, "context": 0.35, "coco-object": 0.95},
    "sclip": {"voc": 0.1, "context": 0.1, "coco-object": 0.1},
}
_LOGIT_SCALE = {
    "zeroseg": {},
    "groupvit": {},
    "sclip": {"voc": 65.0, "context": 50.0, "coco-object": 50.0},
}
_DEFAULT_LOGIT_SCALE = {"zeroseg": 100.0, "groupvit": 100.0, "sclip": 40.0}
_OTHER = {
    "zeroseg": {"top_k_classes": 0, "templates": "imagenet80"},
    "groupvit": {"top_k_classes": 5, "templates": "simple1"},
    "sclip": {"top_k_classes": 0, "templates": "imagenet80"},
}
_FLAVOUR = {"zeroseg": "groupvit", "groupvit": "groupvit", "sclip": "sclip"}


def protocol_config(preset: str, dataset: str) -> tuple[InferenceConfig, str]:
    """The inference settings and the vocabulary flavour of a preset on a benchmark.

    Args:
        preset: zeroseg, groupvit or sclip.
        dataset: voc, voc20, context, context59 or coco-object.

    Returns:
        (config, flavour) where flavour is the argument for ``vocabularies.load_vocabulary``.
    """
    from zeroseg.inference import InferenceConfig

    if preset not in PRESETS:
        raise ZeroSegError(f"unknown protocol {preset!r}: use one of {', '.join(PRESETS)}")
    if dataset not in DATASETS:
        raise ZeroSegError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
    config = InferenceConfig(
        **_GEOMETRY[preset],
        max_long_side=2048,
        logit_scale=_LOGIT_SCALE[preset].get(dataset, _DEFAULT_LOGIT_SCALE[preset]),
        bg_threshold=_BG_THRESHOLD[preset].get(dataset, 0.0),
        **_OTHER[preset],
    )
    return config, _FLAVOUR[preset]
