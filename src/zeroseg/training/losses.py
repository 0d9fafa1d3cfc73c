"""ZeroSeg's three losses (paper §4), as pure functions plus a weighted combination.

Shapes: B batch, N patches, P pixel values per patch, S segment tokens, V views (view 0 = full
image, views 1..V-1 = local grid cells), D embedding size.

Choices where the paper is silent (``zeroseg-paper.md`` §10, each a ``LossConfig`` field):
- [guess 9] embeddings are L2-normalised before the L1 distances (``normalize``);
- [guess 10] L1 is the mean absolute difference over the D feature dimensions; views and segment
  tokens are averaged (``reduction="mean"``) or summed as the equations are written (``"sum"``);
- [guess 22] the nearest-view choice in segment matching is a constant (no gradient through argmin).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from zeroseg.config import LossConfig
from zeroseg.models.decoder import patchify
from zeroseg.models.grouping import compose_assignments


def reconstruction_loss(
    pred: Tensor, target: Tensor, mask: Tensor, norm_pix: bool = False
) -> Tensor:
    """MAE loss: MSE per patch, averaged over masked patches only.

    Args:
        pred: (B, N, P) predicted pixels.
        target: (B, N, P) true pixels (the student-normalised image, patchified).
        mask: (B, N) 1 for masked patches.
        norm_pix: normalise each target patch by its own mean and variance (MAE's norm_pix_loss).
    """
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = ((pred.float() - target.float()) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1)


def l1_distance(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference over the last (feature) dimension, broadcasting leading dims."""
    return (a - b).abs().mean(dim=-1)


def multiscale_distillation_loss(
    global_embedding: Tensor, views: Tensor, reduction: str = "mean"
) -> Tensor:
    """L_ms = sum_k || z - v_k ||_1 over all given views (the paper's multi-scale loss, §4).

    Args:
        global_embedding: (B, D) z.
        views: (B, V, D) teacher views (all 30, or only the full image for the Base ablation).

    Returns:
        scalar: per image, views reduced by ``reduction``; averaged over the batch.
    """
    distances = l1_distance(global_embedding.unsqueeze(1), views)  # (B, V)
    per_image = distances.mean(dim=1) if reduction == "mean" else distances.sum(dim=1)
    return per_image.mean()


def segment_matching_loss(
    segments: Tensor,
    local_views: Tensor,
    reduction: str = "mean",
    mode: str = "nearest",
    overlap: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """L_match = sum_i min_j | g_i - v_j | (paper Eq. 1), j over local views only.

    ``mode="nearest"`` (the paper): each segment token independently takes its nearest local view by
    L1 (many-to-one). Options beyond the paper, against segment collapse (all tokens matching the
    same easy view): ``"one_to_one"`` matches tokens to distinct views (greedy, smallest distance
    first; in rounds when S > V_local); ``"overlap"`` gives each token the view whose region
    best overlaps its segment (largest IoU in ``overlap``), so that what a segment is matched to
    depends on where it is, not only on what its embedding already resembles (segments owning
    almost no patch fall back to their nearest view; the regions come from the noise-free soft
    maps, the embeddings from the assignment as used). The choice is made without gradient; only
    the chosen distances are back-propagated.

    Args:
        segments: (B, S, D) segment embeddings g_i.
        local_views: (B, V_local, D) local-region teacher embeddings (full image excluded).
        reduction: "mean" or "sum" over segment tokens.
        mode: "nearest", "one_to_one", "overlap" or "inside".
        overlap: (B, S, V_local) for ``"overlap"`` the segment-to-view IoU
            (``segment_view_iou``), for ``"inside"`` the share of each view inside the segment
            (``segment_view_share``): the token takes the view it covers most, so a segment over
            an object takes a small cell of that object rather than a large cell around it.

    Returns:
        scalar loss, and (B, S) index of the matched local view per segment token.
    """
    distances = l1_distance(segments.unsqueeze(2), local_views.unsqueeze(1))  # (B, S, V_local)
    with torch.no_grad():
        if mode in ("overlap", "inside"):
            if overlap is None:
                raise ValueError("overlap matching needs the segment-to-view overlaps")
            nearest = distances.argmin(dim=2)  # for segments that own (almost) no patch
            matched = torch.where(overlap.amax(dim=2) > 1e-3, overlap.argmax(dim=2), nearest)
        elif mode == "one_to_one":
            matched = one_to_one(distances)
        else:
            matched = distances.argmin(dim=2)
    chosen = distances.gather(2, matched.unsqueeze(2)).squeeze(2)  # (B, S)
    per_image = chosen.mean(dim=1) if reduction == "mean" else chosen.sum(dim=1)
    return per_image.mean(), matched


def dense_distillation_loss(
    assignment: Tensor,
    segments: Tensor,
    targets: Tensor,
    normalize: bool = True,
) -> Tensor:
    """Beyond the paper: the student's embeddings to the teacher's dense readout.

    Each visible patch's embedding composes the segment embeddings through the soft assignment,
    p_n = sum_s A[n, s] g_s; the loss is the mean over patches of |p_n - t_n|_1, the paper's L1 as
    in its other two losses; both sides L2-normalised with ``normalize``.

    Args:
        assignment: (B, N_vis, S) composed soft assignment of the visible patches.
        segments: (B, S, D) segment embeddings g.
        targets: (B, N_vis, D) the teacher's dense readout at the same patches.
    """
    assignment, segments, targets = assignment.float(), segments.float(), targets.float()
    patches = assignment @ segments  # (B, N_vis, D)
    if normalize:
        patches, targets = F.normalize(patches, dim=-1), F.normalize(targets, dim=-1)
    return l1_distance(patches, targets).mean()


def dense_rank_loss(
    composed: Tensor, targets: Tensor, temperature: float, vocabulary: Tensor | None = None
) -> Tensor:
    """Beyond the paper: a sharp, text-free ranking term on the student's composed patch embeddings.

    For each visible patch n, with p_n the student's composed embedding (assignment maps times
    segment embeddings, as in ``dense_distillation_loss``), t_n the teacher's dense target at that
    patch and u_m the image's vocabulary (by default its visible patches' targets, u = t), all
    L2-normalised::

        KL( softmax_m(t_n . u_m / T)  ||  softmax_m(p_n . u_m / T) )

    averaged over patches and images. The student must rank the image's teacher targets as the
    teacher does, not only come near its own target. Zero at p_n = t_n, and more generally
    whenever p_n . u_m - t_n . u_m is the same for every m.

    Args:
        composed: (B, N_vis, D) the student's composed embeddings p at the visible patches.
        targets: (B, N_vis, D) the teacher's dense readout t at the same patches.
        temperature: T > 0.
        vocabulary: (B, M, D) what each patch is ranked against (e.g. the image's local teacher
            views); None = ``targets`` (M = N_vis).

    Returns:
        scalar, >= 0.
    """
    p = F.normalize(composed.float(), dim=-1)
    t = F.normalize(targets.float(), dim=-1)
    u = t if vocabulary is None else F.normalize(vocabulary.float(), dim=-1)
    teacher = F.log_softmax(t @ u.transpose(1, 2) / temperature, dim=-1)  # (B, N_vis, M)
    student = F.log_softmax(p @ u.transpose(1, 2) / temperature, dim=-1)
    kl = (teacher.exp() * (teacher - student)).sum(dim=-1)  # (B, N_vis)
    return kl.mean()


def grouping_information_loss(assignment: Tensor) -> Tensor:
    """Mutual-information regulariser on the composed soft assignment (beyond the paper).

    ``log S - H(usage) + mean_n H(p_n)``: zero when every patch is assigned with certainty and the
    patches of each image are spread evenly over the S segments (usage averaged per image). Against
    the collapse where all patches of an image fall into one segment and the others copy a generic
    view.

    Args:
        assignment: (B, N, S) patch-to-segment probabilities, rows summing to 1.

    Returns:
        scalar, >= 0.
    """
    p = assignment.float().clamp(min=1e-8)
    conditional = -(p * p.log()).sum(-1).mean()
    usage = p.mean(dim=1)  # (B, S)
    marginal = -(usage * usage.log()).sum(-1).mean()
    return math.log(p.shape[-1]) - marginal + conditional


def patch_box_coverage(
    grid: tuple[int, int], patch_size: int, boxes: list[tuple[int, int, int, int]]
) -> Tensor:
    """Share of each patch's pixels inside each (y0, y1, x0, x1) box -> (N, V), N = h*w raster."""
    h, w = grid
    starts_y = torch.arange(h, dtype=torch.float32) * patch_size
    starts_x = torch.arange(w, dtype=torch.float32) * patch_size
    box = torch.tensor(boxes, dtype=torch.float32)  # (V, 4)

    def overlap(starts: Tensor, lo: Tensor, hi: Tensor) -> Tensor:  # (n,), (V,) -> (n, V)
        top = torch.minimum(starts[:, None] + patch_size, hi[None])
        return (top - torch.maximum(starts[:, None], lo[None])).clamp(min=0) / patch_size

    rows = overlap(starts_y, box[:, 0], box[:, 1])  # (h, V)
    cols = overlap(starts_x, box[:, 2], box[:, 3])  # (w, V)
    return (rows[:, None, :] * cols[None, :, :]).reshape(h * w, len(boxes))


def segment_view_iou(assignment: Tensor, coverage: Tensor) -> Tensor:
    """Soft IoU between each segment's region and each view's region, counted in patches.

    Args:
        assignment: (B, N, S) patch-to-segment probabilities (the composed soft maps).
        coverage: (B, N, V) share of each patch inside each view's box (``patch_box_coverage``).

    Returns:
        (B, S, V) IoU in [0, 1].
    """
    inter = assignment.transpose(1, 2) @ coverage  # (B, S, V)
    union = assignment.sum(1).unsqueeze(2) + coverage.sum(1).unsqueeze(1) - inter
    return inter / union.clamp(min=1e-6)


def segment_view_share(assignment: Tensor, coverage: Tensor) -> Tensor:
    """Share of each view's region that lies in each segment, counted in (soft) patches.

    Args:
        assignment: (B, N, S) patch-to-segment probabilities (the composed soft maps).
        coverage: (B, N, V) share of each patch inside each view's box (``patch_box_coverage``).

    Returns:
        (B, S, V) in [0, 1].
    """
    inter = assignment.transpose(1, 2) @ coverage  # (B, S, V)
    return inter / coverage.sum(1).unsqueeze(1).clamp(min=1e-6)


def one_to_one(distances: Tensor) -> Tensor:
    """Greedy distinct matching: repeatedly take the closest free (token, view) pair.

    With more tokens than views (e.g. 8 segment tokens and a 2x2 grid), matching goes in rounds:
    once every view is taken, all views are free again for the tokens still unmatched, so each
    view serves at most ceil(S / V) tokens.

    Args:
        distances: (B, S, V).

    Returns:
        (B, S) view index per token; distinct within an image when S <= V.
    """
    batch, tokens, views = distances.shape
    work = distances.detach().clone()
    matched = torch.zeros(batch, tokens, dtype=torch.long, device=distances.device)
    done = torch.zeros(batch, tokens, dtype=torch.bool, device=distances.device)
    rows = torch.arange(batch, device=distances.device)
    for step in range(tokens):
        if step and step % views == 0:  # a round is over: every view is free again
            work = distances.detach().clone().masked_fill(done.unsqueeze(2), float("inf"))
        flat = work.flatten(1).argmin(dim=1)
        token, view = flat // views, flat % views
        matched[rows, token] = view
        done[rows, token] = True
        work[rows, token, :] = float("inf")
        work[rows, :, view] = float("inf")
    return matched


def zeroseg_losses(
    cfg: LossConfig,
    *,
    images: Tensor,
    reconstruction: Tensor | None,
    mask: Tensor,
    segments: Tensor,
    global_embedding: Tensor,
    views: Tensor,
    patch_size: int,
    student_normalize,
    norm_pix: bool = False,
    soft_assignments: list[Tensor] | None = None,
    view_coverage: Tensor | None = None,
    dense_targets: Tensor | None = None,
    dense_segments: Tensor | None = None,
) -> dict[str, Tensor]:
    """All loss terms and their weighted sum ``loss``.

    Args:
        images: (B, 3, H, W) [0,1] training images (targets for the reconstruction).
        reconstruction: (B, N, P) decoder output, or None when there is no decoder.
        mask: (B, N) masked patches.
        segments: (B, S, D) g; global_embedding: (B, D) z; views: (B, V, D) teacher embeddings.
        student_normalize: the encoder's input normalisation (targets live in its space).
        soft_assignments: the head's per-stage soft maps [(B, N, S_1), (B, S_1, S_2), ...], composed
            into (B, N, S) only for the grouping term and overlap matching.
        view_coverage: (B, N_vis, V - 1) share of each visible patch (the rows of the stage-1 maps)
            inside each local view's box, for ``matching="overlap"``.
        dense_targets: (B, N_vis, D) the teacher's dense readout at the visible patches, for
            ``dense_weight`` and ``dense_rank_weight`` (beyond the paper).
        dense_segments: (B, S, D) the segment embeddings the dense term trains instead of
            ``segments`` (``dense_gradient="content"``: a second head pass on the detached
            assignments; the assignment is then detached here too).

    Returns:
        dict with ``loss`` and the unweighted ``reconstruction_loss``, ``distillation_loss``,
        ``matching_loss``, ``grouping_loss``, ``dense_loss``, ``dense_rank_loss`` (each present
        when its weight is non-zero), plus
        ``matched_views`` (B, S).
    """
    if cfg.normalize:
        segments = F.normalize(segments.float(), dim=-1)
        global_embedding = F.normalize(global_embedding.float(), dim=-1)
        views = F.normalize(views.float(), dim=-1)
    out: dict[str, Tensor] = {}
    total = torch.zeros((), device=images.device)
    if cfg.reconstruction_weight and reconstruction is not None:
        target = patchify(student_normalize(images), patch_size)
        out["reconstruction_loss"] = reconstruction_loss(reconstruction, target, mask, norm_pix)
        total = total + cfg.reconstruction_weight * out["reconstruction_loss"]
    if cfg.distillation_weight:
        targets = views if cfg.distillation_views == "all" else views[:, :1]
        out["distillation_loss"] = multiscale_distillation_loss(
            global_embedding, targets, cfg.reduction
        )
        total = total + cfg.distillation_weight * out["distillation_loss"]
    needs_maps = (
        cfg.grouping_information_weight
        or cfg.uses_dense_targets
        or cfg.matching in ("overlap", "inside")
    )
    assignment = compose_assignments(soft_assignments) if needs_maps and soft_assignments else None
    if cfg.matching_weight and views.shape[1] > 1:
        overlap = None
        by_views = cfg.matching in ("overlap", "inside")
        if by_views and view_coverage is not None and assignment is not None:
            measure = segment_view_iou if cfg.matching == "overlap" else segment_view_share
            overlap = measure(assignment.detach().float(), view_coverage.float())
        loss, matched = segment_matching_loss(
            segments, views[:, 1:], cfg.reduction, cfg.matching, overlap
        )
        out["matching_loss"] = loss
        out["matched_views"] = matched + 1  # index into all views
        total = total + cfg.matching_weight * loss
    if cfg.grouping_information_weight and assignment is not None:
        out["grouping_loss"] = grouping_information_loss(assignment)
        total = total + cfg.grouping_information_weight * out["grouping_loss"]
    if cfg.uses_dense_targets and assignment is not None and dense_targets is not None:
        dense_maps = assignment if dense_segments is None else assignment.detach()
        trained = segments if dense_segments is None else dense_segments
        if cfg.dense_weight:
            out["dense_loss"] = dense_distillation_loss(
                dense_maps, trained, dense_targets, cfg.normalize
            )
            total = total + cfg.dense_weight * out["dense_loss"]
        if cfg.dense_rank_weight:
            vocabulary = views[:, 1:] if cfg.dense_rank_vocabulary == "views" else None
            composed = dense_maps.float() @ trained.float()  # (B, N_vis, D), always per patch
            out["dense_rank_loss"] = dense_rank_loss(
                composed, dense_targets, cfg.dense_rank_temperature, vocabulary
            )
            total = total + cfg.dense_rank_weight * out["dense_rank_loss"]
    out["loss"] = total
    return out
