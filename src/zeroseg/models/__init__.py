"""Student modules: masked ViT encoder, MAE decoder, grouping segmentation head, composition."""

from zeroseg.models.build import build_encoder, build_zeroseg
from zeroseg.models.decoder import ReconstructionDecoder
from zeroseg.models.encoder import MaskedViTEncoder
from zeroseg.models.seg_head import SegHeadOutput, SegmentationHead
from zeroseg.models.zeroseg import ZeroSeg, ZeroSegOutput

__all__ = [
    "MaskedViTEncoder",
    "ReconstructionDecoder",
    "SegHeadOutput",
    "SegmentationHead",
    "ZeroSeg",
    "ZeroSegOutput",
    "build_encoder",
    "build_zeroseg",
]
