"""The frozen CLIP teacher (paper §3): multi-scale view embeddings and text embeddings.

The teacher owns CLIP's normalisation; inputs are [0,1] pixels. It is always in eval mode, gets no
gradients, is never wrapped in DDP and never saved in checkpoints: its identity lives in the config.

Shapes: B batch, V views (30 for grids 1,2,3,4), S teacher input size, D embedding size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zeroseg.config import TeacherConfig
from zeroseg.errors import ZeroSegError, first_line

logger = logging.getLogger(__name__)


def grid_boxes(height: int, width: int, grids: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """Non-overlapping grid cells as (y0, y1, x0, x1), grid by grid, each in raster order.

    Boundaries are integer-rounded (``round(k * H / g)``) so 3x3 cells of a 224 crop are 75/74/75
    pixels ([guess 12]). The first box of grid 1 is the full image.
    """
    boxes = []
    for g in grids:
        ys = [round(k * height / g) for k in range(g + 1)]
        xs = [round(k * width / g) for k in range(g + 1)]
        boxes += [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(g) for j in range(g)]
    return boxes


class CLIPTeacher(nn.Module):
    """A frozen open_clip model with view cropping and prompt-ensembled text embeddings.

    Args:
        clip: an open_clip ``CLIP`` (or compatible) model; frozen here.
        tokenizer: callable mapping a list of strings to a (N, context) token tensor.
        grids: grid sizes of the views (1 = full image).
        mean, std: the model's input normalisation.
    """

    clip: open_clip.CLIP | open_clip.CustomTextCLIP  # open_clip's models (untyped)
    pixel_mean: Tensor  # buffers, registered in __init__
    pixel_std: Tensor

    def __init__(
        self,
        clip: nn.Module,
        tokenizer,
        grids: Sequence[int] = (1, 2, 3, 4),
        mean: Sequence[float] = open_clip.OPENAI_DATASET_MEAN,
        std: Sequence[float] = open_clip.OPENAI_DATASET_STD,
        dense_size: int = 0,
    ) -> None:
        super().__init__()
        self.dense_size = dense_size  # input size of the dense readout (0: the teacher's own)
        self.clip = clip.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.grids = tuple(grids)
        size = self.clip.visual.image_size
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        self.embed_dim = int(self.clip.visual.output_dim)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), False)

    @property
    def num_views(self) -> int:
        return sum(g * g for g in self.grids)

    def train(self, mode: bool = True) -> CLIPTeacher:
        """The teacher stays in eval mode whatever the caller asks."""
        return super().train(False)

    def normalize(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) [0,1] pixels -> CLIP-normalised."""
        return (images - self.pixel_mean) / self.pixel_std

    @torch.no_grad()
    def encode_images(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) [0,1] images, resized to the teacher's size -> (B, D) embeddings."""
        images = resize_views(images, self.image_size)
        return self.clip.encode_image(self.normalize(images)).float()

    @torch.no_grad()
    def encode_views(self, images: Tensor) -> Tensor:
        """Embed the full image and every grid cell, all views in one batched forward.

        Args:
            images: (B, 3, H, W) [0,1] pixels (the student's training crop).

        Returns:
            (B, V, D) embeddings (not normalised); view 0 is the full image, then grid 2 cells
            in raster order, and so on (``grid_boxes`` order).
        """
        _, _, height, width = images.shape
        return self.encode_crops(images, grid_boxes(height, width, self.grids))

    @torch.no_grad()
    def encode_crops(self, images: Tensor, boxes: Sequence[tuple[int, int, int, int]]) -> Tensor:
        """Embed the (y0, y1, x0, x1) crops of every image, each resized to the teacher's size.

        Args:
            images: (B, 3, H, W) [0,1] pixels.
            boxes: n crop boxes shared by all images.

        Returns:
            (B, n, D) embeddings (not normalised), from one batched forward.
        """
        crops = [
            resize_views(images[:, :, y0:y1, x0:x1], self.image_size) for y0, y1, x0, x1 in boxes
        ]
        views = torch.stack(crops, dim=1).flatten(0, 1)  # (B*n, 3, S, S)
        embeddings = self.clip.encode_image(self.normalize(views)).float()
        return embeddings.view(images.shape[0], len(crops), -1)

    @torch.no_grad()
    def encode_dense(self, images: Tensor, grid: tuple[int, int]) -> Tensor:
        """Dense targets: the dense readout of each image, pooled to a token grid.

        Args:
            images: (B, 3, H, W) [0,1] pixels, resized to ``dense_size`` (or the teacher's size).
            grid: (gh, gw) the student's token grid.

        Returns:
            (B, gh * gw, D) embeddings (not normalised), raster order; the readout's own grid is
            average-pooled to the token grid when it is finer, bilinearly enlarged when coarser.
        """
        from zeroseg.models.dense_readout import dense_features, readout_stride

        size = self.dense_size or self.image_size
        stride = readout_stride(self.clip.visual)
        size = max(stride, size // stride * stride)
        features = dense_features(self.clip.visual, self.normalize(resize_views(images, size)))
        if features.shape[-2] >= grid[0] and features.shape[-1] >= grid[1]:
            features = F.adaptive_avg_pool2d(features, (grid[0], grid[1]))
        else:
            features = F.interpolate(features, tuple(grid), mode="bilinear", align_corners=False)
        return features.flatten(2).transpose(1, 2)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """(N,) strings -> (N, D) text embeddings (not normalised)."""
        device = self.pixel_mean.device
        tokens = self.tokenizer(list(texts)).to(device)
        return self.clip.encode_text(tokens).float()

    @torch.no_grad()
    def build_classifier(
        self, class_names: Sequence[Sequence[str]], templates: Sequence[str]
    ) -> Tensor:
        """One L2-normalised text embedding per query (synonyms flattened in order).

        Each query's templates are embedded, normalised per template, averaged and renormalised
        (CLIP's prompt-ensembling convention).

        Returns:
            (Q, D) where Q = total number of names over all classes.
        """
        queries = [name for names in class_names for name in names]
        embeddings = []
        for name in queries:
            texts = [t.format(name) for t in templates]
            emb = F.normalize(self.encode_text(texts), dim=-1).mean(dim=0)
            embeddings.append(F.normalize(emb, dim=-1))
        return torch.stack(embeddings)


def check_student_matches(teacher: CLIPTeacher, out_dim: int, source: str) -> None:
    """The student's segment embeddings must live in the teacher's space: ``seg_head.out_dim``
    equal to the teacher's embedding size, else a one-line error naming ``source``."""
    if teacher.embed_dim != out_dim:
        raise ZeroSegError(
            f"{source}: seg_head.out_dim={out_dim} must equal the teacher's embedding size "
            f"{teacher.embed_dim}"
        )


def resize_views(images: Tensor, size: int) -> Tensor:
    """(B, 3, h, w) [0,1] crops -> (B, 3, size, size): bicubic, antialiased, clamped to [0, 1]."""
    if images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(
        images, size=(size, size), mode="bicubic", align_corners=False, antialias=True
    )
    return out.clamp_(0, 1)


def build_teacher(cfg: TeacherConfig) -> CLIPTeacher:
    """Build the frozen teacher from its config; fails loudly when weights cannot be had.

    ``pretrained`` is an open_clip tag (e.g. ``openai``), a local checkpoint path, or ``none`` for
    random weights drawn from ``seed`` (tests and smoke runs only). With ``model_config`` the model is
    ``open_clip.CLIP(**model_config)`` and ``pretrained`` must be ``none`` or a state-dict path.
    """
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    if cfg.model_config:
        clip = _seeded(cfg.seed, lambda: open_clip.CLIP(**cfg.model_config))
        if cfg.pretrained != "none":
            _load_state_dict(clip, Path(cfg.pretrained))
        tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=cfg.context_length)
    else:
        clip = _build_named(cfg)
        tokenizer = open_clip.get_tokenizer(cfg.model)
        preprocess = getattr(clip.visual, "preprocess_cfg", {}) or {}
        mean, std = preprocess.get("mean", mean), preprocess.get("std", std)
    if cfg.pretrained == "none":
        logger.warning("teacher %s has RANDOM weights (teacher.pretrained=none)", cfg.model)
    return CLIPTeacher(clip, tokenizer, cfg.grids, mean, std, dense_size=cfg.dense_size)


def _seeded(seed: int, make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def _load_state_dict(model: nn.Module, path: Path) -> None:
    from zeroseg.runtime.weights_file import read_weights

    state = read_weights(path, "teacher checkpoint")
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ZeroSegError(f"teacher checkpoint {path} holds no state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise ZeroSegError(
            f"teacher checkpoint {path} does not fit teacher.model_config: {first}"
        ) from None


def _build_named(cfg: TeacherConfig) -> nn.Module:
    if cfg.model not in open_clip.list_models():
        raise ZeroSegError(f"unknown open_clip model {cfg.model!r} (teacher.model)")
    if cfg.pretrained == "none":
        return _seeded(cfg.seed, lambda: open_clip.create_model(cfg.model, pretrained=None))
    if Path(cfg.pretrained).exists():
        return open_clip.create_model(cfg.model, pretrained=cfg.pretrained)
    tag_cfg = open_clip.get_pretrained_cfg(cfg.model, cfg.pretrained)
    if not tag_cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(cfg.model))
        raise ZeroSegError(
            f"teacher.pretrained={cfg.pretrained!r} is neither a file nor a tag of {cfg.model} ({tags})"
        )
    cached = _cached_weights(tag_cfg)
    if cached is not None:
        quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        return open_clip.create_model(
            cfg.model, pretrained=str(cached), force_quick_gelu=quick_gelu
        )
    if hub_offline():
        raise ZeroSegError(
            f"cannot load teacher weights {cfg.model}/{cfg.pretrained}: not in the local cache and "
            "the Hugging Face Hub is offline (HF_HUB_OFFLINE); pass a local checkpoint path as "
            "teacher.pretrained (or teacher.pretrained=none for random weights, tests only)"
        )
    try:
        return open_clip.create_model(cfg.model, pretrained=cfg.pretrained)
    except Exception as error:  # noqa: BLE001 - any download or load failure, named in one line
        first = first_line(error)
        raise ZeroSegError(
            f"cannot load teacher weights {cfg.model}/{cfg.pretrained}: {first}"
        ) from None


def _cached_weights(tag_cfg: dict) -> Path | None:
    """The tag's weights in the Hugging Face cache, without touching the network."""
    repo = tag_cfg.get("hf_hub", "").strip("/")
    if not repo:
        return None
    from huggingface_hub import try_to_load_from_cache

    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return Path(found)
    return None


def hub_offline() -> bool:
    """The Hugging Face Hub's offline switch (``HF_HUB_OFFLINE``), read now, not at import."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or value in {"1", "ON", "YES", "TRUE"}
