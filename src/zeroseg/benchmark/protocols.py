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

- ``clearclip`` (ClearCLIP's configs): short side 448, sliding 448 windows with stride 224, logit
  scale 50, probability thresholds VOC 0.5 / Context 0.15 / COCO-Object 0.4, SCLIP's class names.
  Not reproduced: ClearCLIP's single-name class files for VOC and COCO-Object (``background``,
  ``person``, ``tvmonitor``; its Context names are SCLIP's).
- ``naclip`` (NACLIP's configs, v2): short side 336, sliding 224/112 (VOC and VOC20: the whole
  image), logit scale 40, threshold 0.1 on background datasets, SCLIP's class names, PAMR with 10
  steps and dilations (8, 16). Not reproduced: NACLIP refines the cosine logits before the
  temperature and soft-max; ``pamr_steps`` refines the class scores after them.

For the training-free methods (``--method sclip|clearclip|naclip``) the windows' class scores are
averaged; their code averages the windows' cosine logits and applies the temperature after.

Background-free datasets (voc20, context59) get ``bg_threshold = 0``: no threshold is involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from zeroseg.errors import ZeroSegError
from zeroseg.inference.config import InferenceConfig

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
        vocabulary: the class-name flavour (``zeroseg.benchmark.vocabularies.load_vocabulary``).
    """

    base: InferenceConfig
    bg_threshold: dict[str, float]
    logit_scale: dict[str, float]
    vocabulary: str
    dataset_changes: dict[str, dict] = field(default_factory=dict)  # other per-dataset fields

    def for_dataset(self, dataset: str) -> InferenceConfig:
        """The inference settings of this protocol on ``dataset``."""
        if dataset not in DATASETS:
            raise ZeroSegError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
        return replace(
            self.base,
            bg_threshold=self.bg_threshold.get(dataset, 0.0),
            logit_scale=self.logit_scale.get(dataset, self.base.logit_scale),
            **self.dataset_changes.get(dataset, {}),
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
    "clearclip": Protocol(
        base=replace(_GROUPVIT_GEOMETRY, logit_scale=50.0, templates="imagenet80"),
        bg_threshold={"voc": 0.5, "context": 0.15, "coco-object": 0.4},
        logit_scale={},
        vocabulary="sclip",
    ),
    "naclip": Protocol(
        base=replace(_SCLIP_GEOMETRY, logit_scale=40.0, templates="imagenet80", pamr_steps=10),
        bg_threshold={"voc": 0.1, "context": 0.1, "coco-object": 0.1},
        logit_scale={},
        vocabulary="sclip",
        dataset_changes={"voc": {"mode": "whole"}, "voc20": {"mode": "whole"}},
    ),
}


def protocol_config(name: str, dataset: str) -> tuple[InferenceConfig, str]:
    """The inference settings and the vocabulary flavour of a protocol on a benchmark.

    Args:
        name: zeroseg, groupvit, sclip, clearclip or naclip.
        dataset: voc, voc20, context, context59 or coco-object.

    Returns:
        (config, flavour) where flavour is the argument for ``vocabularies.load_vocabulary``.
    """
    if name not in PROTOCOLS:
        raise ZeroSegError(f"unknown protocol {name!r}: use one of {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[name]
    return protocol.for_dataset(dataset), protocol.vocabulary
