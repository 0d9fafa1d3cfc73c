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
- Both on COCO-Stuff, ADE20K and Cityscapes (no background, so no threshold), which neither
  paper reports: the same geometry, as TCL's configs give it when they extend GroupViT's
  evaluation to these datasets (khanrc/tcl ``segmentation/configs/_base_/datasets/stuff.py``,
  ``ade20k.py``, ``cityscapes.py``: short side 448, slide 448 / 224), and mmseg's class names
  (the ``groupvit`` flavour of these files). One geometry for all eight keeps the student's
  numbers comparable across benchmarks; Cityscapes' 2:1 images then give 896 x 448 inputs.
  ``zeroseg`` drops the top-5 step there (``top_k_classes=0``): scene-parsing images commonly
  show more than five classes, and the step leaves every class but the image's best five
  unpredictable, a cap TCL's evaluation of these datasets does not have; ``groupvit`` keeps its
  code as it is, top-5 included.
- ``sclip``, ``clearclip``, ``naclip`` (for comparison with training-free CLIP methods): each
  reproduces its authors' pipeline (table below), with their class-name files
  (``vocabularies``: ``sclip`` for SCLIP and NACLIP, ``clearclip`` for ClearCLIP).
- ``maskclip``: the MaskCLIP readout under SCLIP's settings (how the SCLIP, ClearCLIP and NACLIP
  papers tabulate MaskCLIP), with the position embedding resampled by size as MaskCLIP's code
  does. MaskCLIP's own configs (whole image, VOC20 short side 512, Context59 long side 520,
  mmseg 0.x) are not reproduced.

``--method M`` (M a readout) brings protocol M unless ``--protocol`` is given
(``default_protocol``); ``results.json`` records both.

Every setting of the readout protocols, with the file of the authors' repository it comes from
(SCLIP = wangf3014/SCLIP, CC = mc-lan/ClearCLIP, NA = sinahmr/NACLIP, MC = chongzhou96/MaskCLIP):

| setting (``InferenceConfig``) | sclip | clearclip | naclip | source |
|---|---|---|---|---|
| short side / long cap | 336 / 2048; COCO-Stuff 448, Cityscapes 560 | 448 / 2048 | 336 / 2048; Cityscapes 560 | ``configs/cfg_*.py`` ``Resize``; ``cfg_coco_stuff164k.py``, ``cfg_ade20k.py``, ``cfg_city_scapes.py`` |
| mode, window / stride | slide 224 / 112 | slide 448 / 224; Cityscapes 224 / 224 | slide 224 / 112; VOC21, VOC20 whole | SCLIP, NA ``clip_segmentor.py``/``naclip.py`` defaults, ``cfg_voc2*.py`` ``slide_crop=0``; CC ``clearclip_segmentor.py``, ``cfg_city_scapes.py`` ``slide_crop=224`` |
| ``logit_scale`` | 40; VOC21 65; Context60, COCO-Obj 50 | 50 | 40 | ``configs/cfg_*.py``, segmentor defaults |
| ``bg_threshold`` (``prob_thd``) | 0.1 on VOC21, Context60, COCO-Obj | 0.5 / 0.15 / 0.4 | 0.1 | ``configs/cfg_*.py`` (none in the five without background: 0) |
| ``area_threshold`` | VOC21 0.1 | - | - | SCLIP ``configs/cfg_voc21.py``, ``postprocess_result`` |
| ``pos_resample`` | scale | scale | scale | ``interpolate_pos_encoding`` in SCLIP/NA ``clip/model.py``, CC ``open_clip/transformer.py`` |
| ``remainder`` | drop | zeros (centred) | drop | ``forward_feature``; CC ``compute_padsize`` |
| ``merge`` | logits | logits | logits | ``forward_slide``, ``predict``, ``postprocess_result`` |
| ``pamr_steps`` / dilations | 0 | 0 | 10 / (8, 16) | segmentor defaults, ``pamr.py`` |
| readout | q.q + k.k, residual + FFN | q.q, no residual / FFN | k.k + Gaussian (std 5), no residual / FFN | ``custom_attn`` |
| ``clearclip_attention`` | - | qq | - | CC ``demo.py`` (``model_type='ClearCLIP'``); see below |
| normalisation (``merge=logits``) | mean / std on 0-255 to 3 decimals | same | same | ``SegDataPreProcessor`` in each segmentor |
| ``templates`` | imagenet80 | imagenet80 | imagenet80 | ``prompts/imagenet_template.py`` |
| vocabulary | ``sclip`` | ``clearclip`` | ``sclip`` | ``configs/cls_*.txt`` (``cls_coco_stuff``, ``cls_ade20k``, ``cls_city_scapes``: one file in all three) |
| ``precision`` (CUDA) | fp16 | fp16 | fp16 | ``clip.load`` on CUDA; CC ``create_model(..., precision='fp16')`` |

ClearCLIP's ``configs/base_config.py`` says ``model_type='vanilla'`` (q.k attention, with
``ignore_residual=True``: no residual, no feed-forward). Its paper's numbers are ClearCLIP's q.q:
the maintainer answers (mc-lan/ClearCLIP issue #12) that ``model_type='ClearCLIP'`` gives the
paper's "CLIP+ClearCLIP" rows, and ``demo.py`` builds that one; ``vanilla`` with
``ignore_residual=False`` is the CLIP baseline (issues #2, #12). So the protocol's default is q.q,
and ``clearclip_attention=qk`` is the released config's readout.

The three scene benchmarks, as the authors' configs set them (each file read in all three
repositories; the segmentor's class defaults where a config is silent): COCO-Stuff-164k short side
448 in SCLIP and ClearCLIP, 336 in NACLIP; ADE20K 336 in SCLIP and NACLIP, 448 in ClearCLIP;
Cityscapes 560 in SCLIP and NACLIP, 448 in ClearCLIP, whose ``slide_crop=224`` leaves the class's
stride of 224, so its Cityscapes windows do not overlap. None of the nine configs sets a logit
scale, threshold or PAMR: the class defaults (SCLIP 40, ClearCLIP 50, NACLIP 40 with PAMR 10)
hold. ``maskclip`` takes SCLIP's geometry on them, as on the other five.

Where these protocols keep our own choice, as an option: ``merge=scores`` (class scores averaged
per window, background threshold capped at each window's best score: GroupViT's rule, which the
``zeroseg`` and ``groupvit`` protocols need), ``pos_resample=size`` (resampling by size puts the
resampled grid's ends on the original's), ``remainder=replicate`` (no stretching), the ``sclip-clean``
vocabulary (COCO-Object's "bed" not also a background word, so bed can be predicted; the
authors' file ties bed with background, and the tie goes to background), and ``precision=fp32``
(CPU, and bit-stable numbers). Not reproduced: NACLIP's re-normalisation of the probabilities
after the threshold (labels unchanged), the authors' fp16 weights (``precision`` uses autocast).
The ``zeroseg`` and ``groupvit`` protocols leave the student at ``precision=fp32``; an override
(``precision=bf16``) runs its forward under autocast on CUDA as it does the readouts'.

Background-free datasets (voc20, context59) get ``bg_threshold = 0``: no threshold is involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zeroseg.errors import ZeroSegError
from zeroseg.inference.config import InferenceConfig
from zeroseg.inference.methods import method_name

DATASETS = (
    "voc",
    "voc20",
    "context",
    "context59",
    "coco-object",
    "coco-stuff",
    "ade",
    "cityscapes",
)


_GROUPVIT_GEOMETRY = InferenceConfig(
    short_side=448, max_long_side=2048, resize="mmcv", mode="slide", window=448, stride=224
)
_SCLIP_GEOMETRY = InferenceConfig(
    short_side=336, max_long_side=2048, resize="mmcv", mode="slide", window=224, stride=112
)


def _authors(geometry: InferenceConfig, **changes: Any) -> InferenceConfig:
    """The authors' pipeline shared by the readout protocols (``InferenceConfig``'s readout
    fields: positions by scale factor, remainder dropped, logits merged, fp16 on CUDA)."""
    settings: dict[str, Any] = {
        "templates": "imagenet80", "pos_resample": "scale", "remainder": "drop",
        "merge": "logits", "precision": "fp16",
    }  # fmt: skip
    return replace(geometry, **{**settings, **changes})


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
        dataset_changes={d: {"top_k_classes": 0} for d in ("coco-stuff", "ade", "cityscapes")},
    ),
    "groupvit": Protocol(
        base=replace(_GROUPVIT_GEOMETRY, top_k_classes=5, templates="simple1"),
        bg_threshold={"voc": 0.95, "context": 0.35, "coco-object": 0.95},
        logit_scale={},
        vocabulary="groupvit",
    ),
    "sclip": Protocol(
        base=_authors(_SCLIP_GEOMETRY, logit_scale=40.0),
        bg_threshold={"voc": 0.1, "context": 0.1, "coco-object": 0.1},
        logit_scale={"voc": 65.0, "context": 50.0, "coco-object": 50.0},
        vocabulary="sclip",
        dataset_changes={
            "voc": {"area_threshold": 0.1},
            "coco-stuff": {"short_side": 448},
            "cityscapes": {"short_side": 560},
        },
    ),
    "clearclip": Protocol(
        base=_authors(_GROUPVIT_GEOMETRY, logit_scale=50.0, remainder="zeros"),
        bg_threshold={"voc": 0.5, "context": 0.15, "coco-object": 0.4},
        logit_scale={},
        vocabulary="clearclip",
        dataset_changes={"cityscapes": {"window": 224, "stride": 224}},
    ),
    "naclip": Protocol(
        base=_authors(_SCLIP_GEOMETRY, logit_scale=40.0, pamr_steps=10),
        bg_threshold={"voc": 0.1, "context": 0.1, "coco-object": 0.1},
        logit_scale={},
        vocabulary="sclip",
        dataset_changes={
            "voc": {"mode": "whole"},
            "voc20": {"mode": "whole"},
            "cityscapes": {"short_side": 560},
        },
    ),
    "maskclip": Protocol(
        base=_authors(_SCLIP_GEOMETRY, logit_scale=40.0, pos_resample="size"),
        bg_threshold={"voc": 0.1, "context": 0.1, "coco-object": 0.1},
        logit_scale={"voc": 65.0, "context": 50.0, "coco-object": 50.0},
        vocabulary="sclip",
        dataset_changes={"coco-stuff": {"short_side": 448}, "cityscapes": {"short_side": 560}},
    ),
}


def default_protocol(method: str) -> str:
    """The protocol ``--method`` brings when ``--protocol`` is not given: a readout's own
    (``teacher-dense`` is ``maskclip``), ``zeroseg`` for the student."""
    method = method_name(method)
    return method if method in PROTOCOLS else "zeroseg"


def protocol_config(name: str, dataset: str) -> tuple[InferenceConfig, str]:
    """The inference settings and the vocabulary flavour of a protocol on a benchmark.

    Args:
        name: zeroseg, groupvit, sclip, clearclip, naclip or maskclip.
        dataset: a name of ``DATASETS``.

    Returns:
        (config, flavour) where flavour is the argument for ``vocabularies.load_vocabulary``.
    """
    if name not in PROTOCOLS:
        raise ZeroSegError(f"unknown protocol {name!r}: use one of {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[name]
    return protocol.for_dataset(dataset), protocol.vocabulary


def segment_config(name: str) -> InferenceConfig:
    """A protocol's settings for ``zeroseg segment`` (no benchmark): its PASCAL Context ones, the
    most general scenes of the five (the literal "background" as its background query)."""
    return protocol_config(name, "context")[0]


def segment_settings(
    method: str, protocol: str | None = None, checkpoint: str | Path | None = None
) -> InferenceConfig | None:
    """``zeroseg segment``'s settings before its flags: the protocol's (given, or a readout's own),
    else a release's recorded ones; None for the plain defaults."""
    if protocol is None and method != "zeroseg":
        protocol = default_protocol(method)
    if protocol is not None:
        return segment_config(protocol)
    if checkpoint:
        from zeroseg.inference.segmenter import inference_defaults

        return inference_defaults(checkpoint)
    return None
