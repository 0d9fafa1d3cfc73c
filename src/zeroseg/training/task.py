"""The one place where student, teacher and losses meet.

``DistillationTask`` runs the frozen teacher on the multi-scale views (no gradient), the student on
the masked image, and returns the named losses. Only ``task.student`` is wrapped in DDP; the teacher
stays outside it, in eval mode, and is never saved.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from zeroseg.config import LossConfig
from zeroseg.models.teacher import CLIPTeacher, grid_boxes
from zeroseg.models.zeroseg import ZeroSeg, ZeroSegOutput
from zeroseg.training.losses import patch_box_coverage, zeroseg_losses


class DistillationTask(nn.Module):
    """Student + frozen teacher + ZeroSeg losses.

    Args:
        student: the ZeroSeg student (may later be replaced by its DDP wrapper).
        teacher: the frozen CLIP teacher.
        loss_cfg: loss weights and options.
        mask_ratio: share of patches hidden from the encoder while training.
        norm_pix: MAE's normalised-pixel reconstruction target.
    """

    def __init__(
        self,
        student: ZeroSeg,
        teacher: CLIPTeacher,
        loss_cfg: LossConfig,
        mask_ratio: float,
        norm_pix: bool = False,
    ) -> None:
        super().__init__()
        self.student: nn.Module = student
        self.teacher = teacher
        self.loss_cfg = loss_cfg
        self.mask_ratio = mask_ratio
        self.norm_pix = norm_pix

    @property
    def unwrapped_student(self) -> ZeroSeg:
        """The student without a DDP wrapper (what checkpoints save)."""
        student = self.student  # a ZeroSeg, or a DDP wrapper of one
        return cast(ZeroSeg, student.module if hasattr(student, "module") else student)

    def forward(
        self, images: Tensor, views: Tensor | None = None, dense: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Losses for (B, 3, H, W) [0,1] images (``loss`` is the total to back-propagate).

        Args:
            images: the student's training crops.
            views: (B, V, D) cached teacher views of the same crops; computed online when None.
            dense: (B, N, D) cached dense targets at every token (``loss.uses_dense_targets``);
                computed online when None.
        """
        student = self.unwrapped_student
        patch = student.encoder.patch_size
        with torch.no_grad():
            if views is None:
                views = self.teacher.encode_views(images)  # (B, V, D)
            if self.loss_cfg.uses_dense_targets and dense is None:
                grid = (images.shape[-2] // patch, images.shape[-1] // patch)
                dense = self.teacher.encode_dense(images, grid)  # (B, N, D)
        out = self.student(images, self.mask_ratio)
        dense_segments = self._dense_segments(student, out)
        return zeroseg_losses(
            self.loss_cfg,
            images=images,
            reconstruction=out.reconstruction,
            mask=out.mask,
            segments=out.segments.segment_embeddings,
            global_embedding=out.segments.global_embedding,
            views=views,
            patch_size=student.encoder.patch_size,
            student_normalize=student.encoder.normalize,
            norm_pix=self.norm_pix,
            soft_assignments=out.segments.soft_assignments,
            view_coverage=self._view_coverage(images, out.visible, patch),
            dense_targets=_at_visible(dense, out.visible),
            dense_segments=dense_segments,
        )

    def _dense_segments(self, student: ZeroSeg, out: ZeroSegOutput) -> Tensor | None:
        """(B, S, D) what the dense term trains when ``loss.dense_gradient="content"``.

        The segment tokens of a second head pass that pools with the first pass's detached
        assignments, so the dense term reaches everything that makes a token's content, but not the
        assignment logits. None (the first pass's tokens) otherwise.
        """
        if not self.loss_cfg.uses_dense_targets or self.loss_cfg.dense_gradient == "all":
            return None
        fixed = [a.detach() for a in out.segments.assignments]
        return student.seg_head(out.patch_tokens, fixed_assignments=fixed).segment_embeddings

    def _view_coverage(self, images: Tensor, visible: Tensor, patch_size: int) -> Tensor | None:
        """(B, N_vis, V - 1) share of each visible patch in each local view (overlap matching)."""
        if self.loss_cfg.matching not in ("overlap", "inside"):
            return None
        height, width = images.shape[-2:]
        boxes = grid_boxes(height, width, self.teacher.grids)[1:]
        grid = (height // patch_size, width // patch_size)
        coverage = patch_box_coverage(grid, patch_size, boxes).to(images.device)  # (N, V - 1)
        return coverage[visible]


def _at_visible(dense: Tensor | None, visible: Tensor) -> Tensor | None:
    """(B, N, D) per-token targets -> (B, N_vis, D) at the visible tokens' indices (B, N_vis)."""
    if dense is None:
        return None
    index = visible.unsqueeze(-1).expand(-1, -1, dense.shape[-1])
    return torch.gather(dense, 1, index)
