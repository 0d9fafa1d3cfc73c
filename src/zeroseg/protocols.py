"""Named evaluation protocols: an ``InferenceConfig`` value and a class-name flavour per benchmark.

Every protocol resizes as mmseg's test pipeline does (``resize="mmcv"``: ``mmcv.imrescale`` with
cv2's plain bilinear on the 8-bit image, target size rounded half up), so the pixels the model sees
are the ones the published numbers were measured on.

- ``zeroseg`` (default, for comparison with the ZeroSeg paper, which follows GroupViT's inference):
  short side 448 with a 2048 cap, sliding 448 windows with stride 224, CLIP's logit scale 100, the
  paper's background thresholds VOC 0.95 / Context 0.05 / COCO-Object 0.35, the 80 ImageNet
  templates, GroupViT class names, and GroupViT's code path for the class scores: the image-level
  top-5 class restriction whose re-normalised scores are multiplied by the unrestricted ones
  (``top_k_classes=5``; with 5 classes or fewer this squares the probabilities, and the background
  threshold acts on those numbers, as in GroupViT's ``encode_decode``).
- ``groupvit``: GroupViT's released code and configs: the same geometry and top-5 step,
  thresholds 0.95 / 0.35 / 0.95 and the single template "a photo of a {}.".
- ``sclip`` (for comparison with training-free CLIP methods): short side 336, sliding 224 windows
  with stride 112, logit scale 65 on VOC21, 50 on Context60 and COCO-Object, 40 elsewhere, a 0.1
  probability threshold on background datasets only, no top-k step, SCLIP's class names with
  synonyms and background words. Not reproduced: SCLIP's VOC21 ``area_thd`` (dropping classes
  under 10 % of the predicted foreground) and its un-capped threshold (ours is capped at the
  image's best score).

Background-free datasets (voc20, context59) get ``bg_threshold = 0``: no threshold is involved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from zeroseg.errors import ZeroSegError
from zeroseg.inference import InferenceConfig

DATASETS = ("voc", "voc20", "context", "context59", "coco-object")

_GROUPVIT_GEOMETRY = InferenceConfig(
    short_side=448, max_long_side=2048, resize="mmcv", mode="slide", window=448, stride=224
)
_SCLIP_GEOMETRY = InferenceConfig(
    short_side=336, max_long_side=2048, resize="mmcv", mode="slide", window=224, stride=112
)


@dataclass(frozen=True)
class Protocol:
    """A named protocol: its base inference settings and per-dataset differences.

    Attributes:
        base: the settings shared by every dataset.
        bg_threshold: per dataset with a background class (others get 0).
        logit_scale: per dataset where it differs from ``base``.
        vocabulary: the class-name flavour (``zeroseg.vocabularies.load_vocabulary``).
    """

    base: InferenceConfig
    bg_threshold: dict[str, float]
    logit_scale: dict[str, float]
    vocabulary: str

    def for_dataset(self, dataset: str) -> InferenceConfig:
        """The inference settings of this protocol on ``dataset``."""
        if dataset not in DATASETS:
            raise ZeroSegError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
        return replace(
            self.base,
            bg_threshold=self.bg_threshold.get(dataset, 0.0),
            logit_scale=self.logit_scale.get(dataset, self.base.logit_scale),
        )


PROTOCOLS: dict[str, Protocol] = {
    "zeroseg": Protocol(
        base=replace(_GROUPVIT_GEOMETRY, top_k_classes=5, templates="imagenet80"),
        bg_threshold={"voc": 0.95, "context": 0.05, "coco-object": 0.35},
        logit_scale={},
        vocabulary="groupvit",
    ),
    "groupvit": Protocol(
        base=replace(_GROUPVIT_GEOMETRY, top_k_classes=5, templates="simple1"),
        bg_threshold={"voc": 0.95, "context": 0.35, "coco-object": 0.95},
        logit_scale={},
        vocabulary="groupvit",
    ),
    "sclip": Protocol(
        base=replace(_SCLIP_GEOMETRY, logit_scale=40.0, templates="imagenet80"),
        bg_threshold={"voc": 0.1, "context": 0.1, "coco-object": 0.1},
        logit_scale={"voc": 65.0, "context": 50.0, "coco-object": 50.0},
        vocabulary="sclip",
    ),
}


def protocol_config(name: str, dataset: str) -> tuple[InferenceConfig, str]:
    """The inference settings and the vocabulary flavour of a protocol on a benchmark.

    Args:
        name: zeroseg, groupvit or sclip.
        dataset: voc, voc20, context, context59 or coco-object.

    Returns:
        (config, flavour) where flavour is the argument for ``vocabularies.load_vocabulary``.
    """
    if name not in PROTOCOLS:
        raise ZeroSegError(f"unknown protocol {name!r}: use one of {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[name]
    return protocol.for_dataset(dataset), protocol.vocabulary
