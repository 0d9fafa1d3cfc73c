"""The ZeroSeg student: composition of encoder, reconstruction decoder and segmentation head (Fig. 2).

Shapes: B batch, N patches, N_vis visible patches, S segments, D_out teacher embedding size,
P = patch_size**2 * 3.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from zeroseg.models.decoder import ReconstructionDecoder
from zeroseg.models.encoder import MaskedViTEncoder
from zeroseg.models.seg_head import SegHeadOutput, SegmentationHead


@dataclass
class ZeroSegOutput:
    """Everything the losses need from one training forward.

    Attributes:
        reconstruction: (B, N, P) predicted pixels per patch, raster order (None without decoder).
        mask: (B, N) 1 for patches hidden from the encoder.
        segments: the segmentation head's output on the visible tokens.
        visible: (B, N_vis) raster index of each visible token (the rows of the stage-1 maps).
        patch_tokens: (B, N_vis, D) the encoder's visible tokens, the head's input.
    """

    reconstruction: Tensor | None
    mask: Tensor
    segments: SegHeadOutput
    visible: Tensor
    patch_tokens: Tensor | None = None


class ZeroSeg(nn.Module):
    """MAE-style encoder feeding a reconstruction decoder and a grouping segmentation head.

    Args:
        encoder: masked ViT encoder (owns the ImageNet input normalisation).
        seg_head: segmentation head producing segment tokens in the teacher's space.
        decoder: optional MAE decoder (only needed for training with the reconstruction loss).
    """

    def __init__(
        self,
        encoder: MaskedViTEncoder,
        seg_head: SegmentationHead,
        decoder: ReconstructionDecoder | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.seg_head = seg_head
        self.decoder = decoder

    @property
    def input_size(self) -> int:
        """The square input size the student was trained at (inference defaults derive from it)."""
        return self.encoder.input_size

    def forward(self, images: Tensor, mask_ratio: float = 0.0) -> ZeroSegOutput:
        """Training forward on (B, 3, H, W) [0,1] images; the head sees visible tokens only."""
        encoded = self.encoder(images, mask_ratio)
        reconstruction = None
        if self.decoder is not None:
            reconstruction = self.decoder(
                encoded.patch_tokens, encoded.cls_token, encoded.ids_restore, encoded.grid
            )
        segments = self.seg_head(encoded.patch_tokens)
        return ZeroSegOutput(
            reconstruction, encoded.mask, segments, encoded.ids_keep, encoded.patch_tokens
        )

    def encode_segments(self, images: Tensor) -> tuple[SegHeadOutput, tuple[int, int]]:
        """Inference forward without masking: segment tokens and grouping maps of all patches.

        Returns:
            The head's output (stage-1 maps have N = h*w rows in raster order) and the grid (h, w).
        """
        encoded = self.encoder(images, mask_ratio=0.0)
        return self.seg_head(encoded.patch_tokens), encoded.grid
