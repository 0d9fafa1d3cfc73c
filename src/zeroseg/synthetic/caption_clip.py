"""A small CLIP trained on synthetic captions only: the teacher of the synthetic world.

An ``open_clip.CLIP`` built from a custom config (a small ModifiedResNet image tower and a small text
transformer), trained contrastively on captioned views of scenes at every scale, from whole scenes
down to 4x4 grid cells and random boxes (``crops``), each captioned with what it shows; captions are
its only supervision (no masks, no boxes reach the loss). Crops with the same caption in a batch
are positives of each other (a multi-positive InfoNCE; CLIP's loss would push them apart). It then
plays CLIP's role for ZeroSeg: the student distils its image embeddings and its text tower names
the segments.

The saved teacher is what ``zeroseg.models.teacher.build_teacher`` loads: ``teacher.safetensors`` (a plain
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
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from torch import Tensor, nn

from zeroseg.config import check
from zeroseg.errors import ZeroSegError
from zeroseg.models.teacher import resize_views
from zeroseg.runtime.atomic import atomic_write, atomic_write_text
from zeroseg.runtime.progress import progress as progress_bar
from zeroseg.synthetic.crops import crop_caption, sample_box
from zeroseg.synthetic.scenes import (
    WORLD_VERSION,
    generate_scene,
)
from zeroseg.synthetic.views import preprocess, view_accuracy, zero_shot_accuracy
from zeroseg.training.optim import lr_at, param_groups

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "teacher.safetensors"
_VIEW_SALT = 15485863  # the crops' draws, apart from the scene's own stream


@dataclass(frozen=True)
class CaptionCLIPConfig:
    """Sizes and schedule of the caption-trained teacher.

    The measured cost and accuracies of the defaults are in the shipped ``teacher.json``
    (``shipped_teacher()``) and BENCHMARKS.md.
    """

    scene_size: int = 64  # rendered scene size (the student's world)
    image_size: int = 32  # teacher input size; scenes and views are resized to it (bicubic)
    embed_dim: int = 128  # joint embedding size (the student's target width)
    vision_layers: tuple[int, int, int, int] = (1, 1, 1, 1)  # ModifiedResNet blocks per stage
    vision_width: int = 32  # ModifiedResNet stem width (features: 32 x width)
    vision_head_width: int = 64  # attention-pool head width
    text_width: int = 64
    text_heads: int = 2
    text_layers: int = 1
    context_length: int = 24  # the longest caption is 23 tokens with start and end
    max_objects: int = 4  # shapes per training scene: 1 .. max_objects
    bank_size: int = 10000  # scenes rendered once, their crops reused across steps
    views_per_scene: int = 4  # captioned crops drawn from each scene (``crops.sample_box``)
    steps: int = 2000
    batch_size: int = 256
    lr: float = 3e-3  # peak AdamW learning rate after a linear warm-up, cosine decay to 0
    warmup_steps: int = 50
    weight_decay: float = 0.1  # on weight matrices and convolutions only
    text_lock_steps: int = 1000  # text tower and logit scale frozen at their random init first
    seed: int = 0
    eval_images: int = 400  # single-object scenes for the zero-shot check
    eval_seed: int = 1234
    eval_every: int = 0  # log zero-shot accuracy every this many steps (0: only at the end)

    def __post_init__(self) -> None:
        check(
            self.steps >= 1 and 2 <= self.batch_size <= self.bank_size * self.views_per_scene,
            "caption CLIP needs steps >= 1 and 2 <= batch_size <= bank_size x views_per_scene",
        )
        check(self.views_per_scene >= 1, "caption CLIP views_per_scene must be >= 1")


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


def crop_bank(config: CaptionCLIPConfig) -> tuple[np.ndarray, list[str]]:
    """``views_per_scene`` captioned crops of scenes ``0 .. bank_size - 1`` of stream ``seed``.

    Each crop (``crops.sample_box``) is resized to ``image_size`` the way the ZeroSeg teacher
    resizes its views (bicubic, antialiased) and stored as 8 bits.

    Returns:
        (N, S, S, 3) uint8 crops and their N captions (``crops.crop_caption``).
    """
    count = config.bank_size * config.views_per_scene
    images = np.empty((count, config.image_size, config.image_size, 3), dtype=np.uint8)
    captions = []
    for i in range(config.bank_size):
        scene = generate_scene(config.seed, i, config.scene_size, config.max_objects)
        rng = np.random.default_rng([config.seed, i, _VIEW_SALT])
        pixels = torch.from_numpy(scene.image).permute(2, 0, 1)[None].float() / 255
        for v in range(config.views_per_scene):
            y0, y1, x0, x1 = box = sample_box(rng, config.scene_size)
            crop = resize_views(pixels[:, :, y0:y1, x0:x1], config.image_size)
            images[i * config.views_per_scene + v] = (
                (crop[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            )
            captions.append(crop_caption(rng, scene.labels, box))
    return images, captions


def _no_decay_for_clip(name: str, param: nn.Parameter) -> bool:
    """open_clip's rule: no decay on biases, norms, embeddings and the logit scale."""
    small = param.ndim < 2 or "bn" in name or "ln" in name or "logit_scale" in name
    return small or "embedding" in name


def contrastive_loss(
    image_features: Tensor, text_features: Tensor, scale: Tensor, caption_ids: Tensor
) -> Tensor:
    """Symmetric InfoNCE over a batch where equal captions are positives of each other.

    Args:
        image_features, text_features: (B, D) L2-normalised.
        scale: the logit scale.
        caption_ids: (B,) equal ids for equal captions; targets spread evenly over them.
    """
    logits = scale * image_features @ text_features.T  # (B, B)
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    image_loss = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    text_loss = -(targets * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return (image_loss + text_loss) / 2


def _train_step(
    model: open_clip.CLIP,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    tokens: Tensor,
    caption_ids: Tensor,
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
    loss = contrastive_loss(image_features, text_features, scale, caption_ids)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
    return loss.item()


def _tokenize(tokenizer, captions: list[str]) -> tuple[Tensor, Tensor]:
    """(N, context) tokens, each distinct caption tokenised once, and (N,) caption ids (equal ids
    for equal captions, the positives of ``contrastive_loss``)."""
    unique = sorted(set(captions))
    index = {caption: i for i, caption in enumerate(unique)}
    ids = torch.tensor([index[c] for c in captions])
    return tokenizer(unique)[ids], ids


def train_caption_clip(
    config: CaptionCLIPConfig, out_dir: str | Path, progress: bool = True
) -> Path:
    """Train the teacher on captioned views and save it with its measured accuracies.

    Writes ``out_dir/teacher.safetensors`` (state_dict) then ``out_dir/teacher.json`` (both
    atomically; the json, written last, marks a complete teacher). Returns the weights path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=config.context_length)
    images, captions = crop_bank(config)
    bank = torch.from_numpy(images)  # (N, H, W, 3) uint8
    tokens, caption_ids = _tokenize(tokenizer, captions)  # (N, context), (N,)
    bank_seconds = time.perf_counter() - start
    logger.info("rendered %d captioned views in %.1fs", len(captions), bank_seconds)

    torch.manual_seed(config.seed)
    model = open_clip.CLIP(**model_config(config)).to(memory_format=torch.channels_last)
    groups = param_groups(model, config.weight_decay, no_decay=_no_decay_for_clip)
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    bar = progress_bar(range(config.steps), desc="caption CLIP", enabled=progress)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config.lr, config.warmup_steps, config.steps)
        index = torch.randperm(len(bank), generator=generator)[: config.batch_size]
        flip = torch.rand(len(index), generator=generator) < 0.5  # captions are flip-invariant
        batch = preprocess(bank[index], config.image_size)
        batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
        locked = step < config.text_lock_steps
        loss = _train_step(model, optimizer, batch, tokens[index], caption_ids[index], locked)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")
        if config.eval_every and (step + 1) % config.eval_every == 0:
            model.eval()
            accuracy = zero_shot_accuracy(model, tokenizer, 200, config.eval_seed)
            model.train()
            logger.info("step %d: loss %.3f, zero-shot %s", step + 1, loss, accuracy)
    train_seconds = time.perf_counter() - start
    logger.info("caption CLIP: trained in %.1fs (scenes %.1fs)", train_seconds, bank_seconds)
    return finish_caption_clip(model, tokenizer, config, out_dir, train_seconds)


def finish_caption_clip(
    model: open_clip.CLIP, tokenizer, config: CaptionCLIPConfig, out_dir: str | Path, seconds: float
) -> Path:
    """Round a trained teacher to the float16 weights that are saved, measure those weights
    (single-object scenes, grid cells per scale, the quick check), and save weights and record."""
    model = model.half().float().eval()
    accuracy = zero_shot_accuracy(model, tokenizer, config.eval_images, config.eval_seed)
    views = view_accuracy(model, tokenizer, scene_size=config.scene_size)
    quick = quick_check(model, tokenizer, config)
    logger.info("caption CLIP: zero-shot %s; grid cells %s", accuracy, views)
    accuracies = {"zero_shot": accuracy, "views": views, "check": quick}
    return _save(model, config, Path(out_dir), accuracies, seconds)


def _save(model: open_clip.CLIP, config, out_dir: Path, accuracy: dict, seconds: float) -> Path:
    from safetensors.torch import save_file

    weights, info = out_dir / WEIGHTS_NAME, out_dir / "teacher.json"
    state = {  # float16 on disk (half the size); loading casts back to the model's float32
        k: (v.half() if v.is_floating_point() else v).detach().clone().contiguous()
        for k, v in model.state_dict().items()
    }
    atomic_write(weights, lambda tmp: save_file(state, tmp))
    meta = dict(
        model_config=model_config(config),
        context_length=config.context_length,
        image_size=config.image_size,
        zero_shot=accuracy["zero_shot"],
        view_accuracy=accuracy["views"],
        check=accuracy["check"],
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
    return dict(kept, world_version=world_version)


def quick_check(model: open_clip.CLIP, tokenizer, config: CaptionCLIPConfig) -> dict[str, Any]:
    """Accuracies on a small held-out set, recorded with the weights so a test can recompute them
    in seconds (40 single-object scenes; the 2x2 and 4x4 cells of 10 scenes)."""
    return {
        "zero_shot": zero_shot_accuracy(model, tokenizer, 40, config.eval_seed, config.scene_size),
        "views": view_accuracy(model, tokenizer, 10, scene_size=config.scene_size, grids=(2, 4)),
    }


def shipped_teacher() -> Path:
    """Where the package keeps its trained teacher (``zeroseg/synthetic/teacher/``)."""
    return Path(
        str(resources.files("zeroseg.synthetic").joinpath("teacher").joinpath(WEIGHTS_NAME))
    )


def matches(weights: Path, config: CaptionCLIPConfig) -> bool:
    """Whether the teacher saved at ``weights`` was trained with ``config`` in this world version."""
    info = Path(weights).with_name("teacher.json")
    if not (info.is_file() and Path(weights).is_file()):
        return False
    try:
        meta = json.loads(info.read_text(encoding="utf-8"))
        saved = _identity(meta["train_config"], meta.get("world_version"))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return False
    return saved == _identity(_config_dict(config), WORLD_VERSION)


def load_or_train_caption_clip(
    config: CaptionCLIPConfig, cache_dir: str | Path, progress: bool = True, retrain: bool = False
) -> Path:
    """A teacher trained with ``config`` in this world version: the package's shipped one, or the
    one cached under ``cache_dir``; otherwise (or with ``retrain``) train one into ``cache_dir``.

    A saved teacher matches when its json's ``train_config`` equals ``config`` (logging fields
    aside) and its ``world_version`` the generator's. Returns the weights path.
    """
    cache_dir = Path(cache_dir)
    if not retrain:
        for weights in (shipped_teacher(), cache_dir / WEIGHTS_NAME):
            if matches(weights, config):
                logger.info("using the caption CLIP %s", weights)
                return weights
    return train_caption_clip(config, cache_dir, progress)


def load_caption_clip(weights: str | Path) -> tuple[open_clip.CLIP, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, teacher.json contents) from saved ``teacher.safetensors``."""
    weights = Path(weights)
    info = weights.with_suffix(".json")
    if not weights.is_file() or not info.is_file():
        raise ZeroSegError(f"no caption CLIP at {weights} (needs {weights.name} and {info.name})")
    from safetensors.torch import load_file

    meta = json.loads(info.read_text(encoding="utf-8"))
    model = open_clip.CLIP(**meta["model_config"])
    model.load_state_dict(load_file(str(weights)))
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=meta["context_length"])
    return model.eval(), tokenizer, meta
