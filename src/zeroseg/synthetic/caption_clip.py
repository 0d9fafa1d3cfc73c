"""A small CLIP trained on synthetic captions only: the teacher of the synthetic world (issue #3).

An ``open_clip.CLIP`` built from a custom config (a small ModifiedResNet image tower and a small text
transformer), trained with open_clip's contrastive ``ClipLoss`` on whole scenes and their captions
(no masks, no boxes). It then plays CLIP's role for ZeroSeg: the student distils its image
embeddings and its text tower names the segments.

The saved teacher is what ``zeroseg.teacher.build_teacher`` loads: ``teacher.pt`` (a plain
state_dict) and ``teacher.json`` whose ``model_config`` is the kwargs of ``open_clip.CLIP``.
Inputs are [0, 1] pixels resized to ``image_size`` and normalised with OpenAI CLIP's mean/std,
exactly as the core teacher does.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torch import Tensor, nn

from zeroseg.atomic import atomic_torch_save, atomic_write_text
from zeroseg.config import check
from zeroseg.errors import ZeroSegError
from zeroseg.progress import progress as progress_bar
from zeroseg.synthetic.scenes import (
    OBJECT_CLASSES,
    STUFF_CLASSES,
    WORLD_VERSION,
    scene_bank,
    single_object_set,
)

logger = logging.getLogger(__name__)

_MEAN = torch.tensor(open_clip.constants.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(open_clip.constants.OPENAI_DATASET_STD).view(1, 3, 1, 1)


@dataclass(frozen=True)
class CaptionCLIPConfig:
    """Sizes and schedule of the caption-trained teacher.

    Defaults: 255-273 s on 2 CPU cores (25-27 s of it rendering the scenes), zero-shot 91.7% on
    shapes and 100% on backgrounds (single-object scenes).
    """

    scene_size: int = 64  # rendered scene size (the student's world)
    image_size: int = 32  # teacher input size; scenes and views are resized to it (bicubic)
    embed_dim: int = 128  # joint embedding size (the student's target width)
    vision_layers: tuple[int, int, int, int] = (1, 1, 1, 1)  # ModifiedResNet blocks per stage
    vision_width: int = 16  # ModifiedResNet stem width (features: 32 x width)
    vision_head_width: int = 64  # attention-pool head width
    text_width: int = 64
    text_heads: int = 2
    text_layers: int = 1
    context_length: int = 24  # the longest caption is 23 tokens with start and end
    max_objects: int = 4  # shapes per training scene: 1 .. max_objects
    bank_size: int = 16000  # scenes rendered once, reused across steps
    zoom_probability: float = 0.0  # share of close-up scenes in the bank (``scenes.zoom_in``)
    zoom_range: tuple[float, float] = (0.25, 0.75)  # close-up side as a fraction of the scene
    steps: int = 3200
    batch_size: int = 128
    lr: float = 3e-3  # peak AdamW learning rate after a linear warm-up, cosine decay to 0
    warmup_steps: int = 50
    weight_decay: float = 0.1  # on weight matrices and convolutions only
    text_lock_steps: int = 1600  # text tower and logit scale frozen at their random init first
    seed: int = 0
    eval_images: int = 400  # single-object scenes for the zero-shot check
    eval_seed: int = 1234
    eval_every: int = 0  # log zero-shot accuracy every this many steps (0: only at the end)

    def __post_init__(self) -> None:
        low, high = self.zoom_range
        check(
            0 <= self.zoom_probability <= 1 and 0 < low <= high <= 1,
            "caption CLIP close-ups (zoom_probability, --teacher-close-ups) need a share in "
            f"[0, 1] and 0 < zoom_range[0] <= zoom_range[1] <= 1, got {self.zoom_probability} "
            f"and {self.zoom_range}",
        )


def model_config(config: CaptionCLIPConfig) -> dict[str, Any]:
    """JSON-ready kwargs for ``open_clip.CLIP(**kwargs)`` (the cfgs as plain dicts)."""
    vision = dict(
        layers=list(config.vision_layers),
        width=config.vision_width,
        head_width=config.vision_head_width,
        image_size=config.image_size,
    )
    text = dict(
        context_length=config.context_length,
        width=config.text_width,
        heads=config.text_heads,
        layers=config.text_layers,
    )
    return dict(embed_dim=config.embed_dim, vision_cfg=vision, text_cfg=text)


def preprocess(images: Tensor, image_size: int) -> Tensor:
    """(B, 3, H, W) [0,1] float (or (B, H, W, 3) uint8) -> CLIP-normalised (B, 3, S, S)."""
    if images.dtype == torch.uint8:
        images = images.permute(0, 3, 1, 2).float().div_(255)
    if images.shape[-1] != image_size:
        images = F.interpolate(
            images, size=(image_size, image_size), mode="bicubic", antialias=True
        )
        images = images.clamp_(0, 1)
    return ((images - _MEAN) / _STD).contiguous(memory_format=torch.channels_last)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        small = param.ndim < 2 or "bn" in name or "ln" in name or "logit_scale" in name
        (no_decay if small or "embedding" in name else decay).append(param)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def _lr_at(step: int, config: CaptionCLIPConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: ClipLoss,
    images: Tensor,
    tokens: Tensor,
    text_locked: bool,
) -> float:
    """One contrastive step on (B, 3, S, S) normalised images and (B, context) tokens.

    With ``text_locked`` the text tower and the logit scale get no gradient (AdamW skips them): the
    image tower first learns to predict the random text tower's caption features, which keep
    every shape word apart. Training both towers from the start, the text tower learns to ignore
    the shape words (hard to see) long before the image tower can see shapes; it is the difference
    between ~30% and ~90% zero-shot shape accuracy at the same budget.
    """
    image_features = model.encode_image(images, normalize=True)
    with torch.set_grad_enabled(not text_locked):
        text_features = model.encode_text(tokens, normalize=True)
        scale = model.logit_scale.exp()
    loss = loss_fn(image_features, text_features, scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
    return loss.item()


def _tokenize(tokenizer, captions: list[str]) -> Tensor:
    """(N, context) tokens, each distinct caption tokenised once."""
    unique = sorted(set(captions))
    table = tokenizer(unique)
    index = {caption: i for i, caption in enumerate(unique)}
    return table[torch.tensor([index[c] for c in captions])]


def train_caption_clip(
    config: CaptionCLIPConfig, out_dir: str | Path, progress: bool = True
) -> Path:
    """Train the teacher on captioned scenes and save it with its zero-shot accuracy.

    Writes ``out_dir/teacher.pt`` (state_dict) then ``out_dir/teacher.json`` (both atomically; the
    json, written last, marks a complete teacher). Returns the ``.pt`` path.
    """
    if config.steps < 1 or config.batch_size < 2 or config.bank_size < config.batch_size:
        raise ZeroSegError("caption CLIP needs steps >= 1 and 2 <= batch_size <= bank_size")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=config.context_length)
    images, captions = scene_bank(
        config.bank_size,
        config.seed,
        config.scene_size,
        config.max_objects,
        zoom_probability=config.zoom_probability,
        zoom_range=config.zoom_range,
    )
    bank = torch.from_numpy(images)  # (N, H, W, 3) uint8
    tokens = _tokenize(tokenizer, captions)  # (N, context)
    bank_seconds = time.perf_counter() - start
    logger.info("rendered %d captioned scenes in %.1fs", len(captions), bank_seconds)

    torch.manual_seed(config.seed)
    model = open_clip.CLIP(**model_config(config)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr)
    loss_fn = ClipLoss()
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    bar = progress_bar(range(config.steps), desc="caption CLIP", enabled=progress)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        index = torch.randperm(len(bank), generator=generator)[: config.batch_size]
        flip = torch.rand(len(index), generator=generator) < 0.5  # captions are flip-invariant
        batch = preprocess(bank[index], config.image_size)
        batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
        locked = step < config.text_lock_steps
        loss = _train_step(model, optimizer, loss_fn, batch, tokens[index], locked)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")
        if config.eval_every and (step + 1) % config.eval_every == 0:
            model.eval()
            accuracy = zero_shot_accuracy(model, tokenizer, 200, config.eval_seed)
            model.train()
            logger.info("step %d: loss %.3f, zero-shot %s", step + 1, loss, accuracy)
    train_seconds = time.perf_counter() - start
    model.eval()
    accuracy = zero_shot_accuracy(model, tokenizer, config.eval_images, config.eval_seed)
    logger.info(
        "caption CLIP: %.1fs (scenes %.1fs); zero-shot objects %.3f, backgrounds %.3f",
        train_seconds,
        bank_seconds,
        accuracy["objects"],
        accuracy["backgrounds"],
    )
    return _save(model, config, out_dir, accuracy, train_seconds)


def _save(model: nn.Module, config, out_dir: Path, accuracy: dict, seconds: float) -> Path:
    weights, info = out_dir / "teacher.pt", out_dir / "teacher.json"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_torch_save(state, weights)
    meta = dict(
        model_config=model_config(config),
        context_length=config.context_length,
        image_size=config.image_size,
        zero_shot=accuracy,
        train_config=_config_dict(config),
        world_version=WORLD_VERSION,
        train_seconds=round(seconds, 1),
    )
    atomic_write_text(info, json.dumps(meta, indent=2) + "\n")
    return weights


_LOGGING_ONLY = ("eval_every",)


def _config_dict(config: CaptionCLIPConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))  # tuples -> lists, as read back from JSON


def _identity(train_config: dict[str, Any], world_version: Any) -> dict[str, Any]:
    """What a cached teacher must match: its training config (logging aside) and the world."""
    kept = {k: v for k, v in train_config.items() if k not in _LOGGING_ONLY}
    if not kept.get("zoom_probability"):  # teachers cached before close-ups existed had none
        kept = {k: v for k, v in kept.items() if k not in ("zoom_probability", "zoom_range")}
    return dict(kept, world_version=world_version)


def load_or_train_caption_clip(
    config: CaptionCLIPConfig, cache_dir: str | Path, progress: bool = True
) -> Path:
    """The cached ``teacher.pt`` under ``cache_dir`` when its json's ``train_config`` equals
    ``config`` (logging fields aside) and its ``world_version`` the generator's; otherwise train
    (and cache) a new one. Returns the ``.pt`` path."""
    cache_dir = Path(cache_dir)
    weights, info = cache_dir / "teacher.pt", cache_dir / "teacher.json"
    if info.is_file() and weights.is_file():
        try:
            meta = json.loads(info.read_text(encoding="utf-8"))
            cached = _identity(meta["train_config"], meta.get("world_version"))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            cached = None
        if cached == _identity(_config_dict(config), WORLD_VERSION):
            logger.info("using the cached caption CLIP %s", weights)
            return weights
        logger.info("cached caption CLIP in %s has another config: retraining", cache_dir)
    return train_caption_clip(config, cache_dir, progress)


def load_caption_clip(weights: str | Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, teacher.json contents) from a saved ``teacher.pt``."""
    weights = Path(weights)
    info = weights.with_suffix(".json")
    if not weights.is_file() or not info.is_file():
        raise ZeroSegError(f"no caption CLIP at {weights} (needs {weights.name} and {info.name})")
    meta = json.loads(info.read_text(encoding="utf-8"))
    model = open_clip.CLIP(**meta["model_config"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=meta["context_length"])
    return model.eval(), tokenizer, meta


@torch.no_grad()
def zero_shot_accuracy(
    model: nn.Module,
    tokenizer,
    num_images: int = 400,
    seed: int = 1234,
    scene_size: int = 64,
    template: str = "a photo of a {}.",
    batch_size: int = 200,
) -> dict[str, float]:
    """Zero-shot classification of single-object scenes, objects and backgrounds separately.

    Objects are classified over ``OBJECT_CLASSES`` and backgrounds over ``STUFF_CLASSES``, each
    class name put in ``template``; the model must be in eval mode.

    Returns:
        ``{"objects": accuracy, "backgrounds": accuracy}`` in [0, 1].
    """
    size = model.visual.image_size
    image_size = int(size[0] if isinstance(size, tuple | list) else size)
    images, objects, backgrounds = single_object_set(num_images, seed, scene_size)
    features = torch.cat(
        [
            model.encode_image(preprocess(torch.from_numpy(chunk), image_size), normalize=True)
            for chunk in np.array_split(images, max(1, math.ceil(num_images / batch_size)))
        ]
    )
    result = {}
    for key, names, truth in (
        ("objects", OBJECT_CLASSES, objects),
        ("backgrounds", STUFF_CLASSES, backgrounds),
    ):
        texts = model.encode_text(tokenizer([template.format(n) for n in names]), normalize=True)
        predicted = (features @ texts.T).argmax(dim=1).numpy()
        result[key] = float((predicted == truth).mean())
    return result
