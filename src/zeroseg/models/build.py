"""Builders: from typed config sections to plain modules (segment-anything's ``build_sam`` idea)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import timm
from timm.models.vision_transformer import VisionTransformer

from zeroseg.config import DecoderConfig, EncoderConfig, SegHeadConfig
from zeroseg.errors import ZeroSegError
from zeroseg.models.decoder import ReconstructionDecoder
from zeroseg.models.encoder import MaskedViTEncoder
from zeroseg.models.seg_head import SegmentationHead
from zeroseg.models.zeroseg import ZeroSeg
from zeroseg.runtime.weights_file import read_weights

logger = logging.getLogger(__name__)


def build_encoder(cfg: EncoderConfig) -> MaskedViTEncoder:
    """A timm ViT trunk (random init, or a local timm/MAE checkpoint) wrapped for masking."""
    model = timm.create_model(
        cfg.timm_name,
        pretrained=False,
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.width,
        depth=cfg.depth,
        num_heads=cfg.heads,
        num_classes=0,
        global_pool="",
        dynamic_img_size=True,
    )
    vit = cast(VisionTransformer, model)  # encoder.timm_name names a timm ViT
    if cfg.init_checkpoint:
        _load_vit_weights(vit, Path(cfg.init_checkpoint))
    return MaskedViTEncoder(vit)


def _load_vit_weights(vit: VisionTransformer, path: Path) -> None:
    """Load a timm or MAE ViT checkpoint; only head/decoder keys may be left out."""
    state = read_weights(path, "encoder.init_checkpoint")
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ZeroSegError(f"encoder.init_checkpoint {path} holds no state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(("decoder", "mask_token", "head"))}
    pos_embed = vit.pos_embed
    if (
        "pos_embed" in state
        and pos_embed is not None
        and state["pos_embed"].shape != pos_embed.shape
    ):
        from timm.layers import resample_abs_pos_embed

        grid = vit.patch_embed.grid_size
        state["pos_embed"] = resample_abs_pos_embed(
            state["pos_embed"], list(grid), num_prefix_tokens=1
        )
    missing, unexpected = vit.load_state_dict(state, strict=False)
    allowed_missing = {k for k in missing if k.startswith(("fc_norm", "head"))}
    if set(missing) - allowed_missing or unexpected:
        bad = sorted(set(missing) - allowed_missing) + sorted(unexpected)
        raise ZeroSegError(f"encoder.init_checkpoint {path} does not match the ViT: key {bad[0]}")
    logger.info("encoder initialised from %s", path)


def build_zeroseg(
    encoder: EncoderConfig, seg_head: SegHeadConfig, decoder: DecoderConfig | None
) -> ZeroSeg:
    """The student; pass ``decoder=None`` for an inference-only model."""
    enc = build_encoder(encoder)
    head = SegmentationHead(
        in_dim=encoder.width,
        width=seg_head.width,
        heads=seg_head.heads,
        depths=tuple(seg_head.depths),
        num_group_tokens=tuple(seg_head.num_group_tokens),
        out_dim=seg_head.out_dim,
        projector_hidden=seg_head.projector_hidden,
        hard=seg_head.hard,
        gumbel=seg_head.gumbel,
        gumbel_tau=seg_head.gumbel_tau,
        projector=seg_head.projector,
        norm_eps=seg_head.norm_eps,
    )
    dec = None
    if decoder is not None:
        dec = ReconstructionDecoder(
            encoder.width, decoder.width, decoder.depth, decoder.heads, encoder.patch_size,
            norm_eps=decoder.norm_eps,
        )  # fmt: skip
    return ZeroSeg(enc, head, dec)
