"""Typed configuration: frozen dataclasses are the schema, YAML presets and ``key=value`` override.

``resolve_config`` is the one way into every config of the project (experiment, inference, demo,
caption teacher): dataclass defaults (or a given base value) < preset YAML < ``key=value`` overrides
(dotted keys, e.g. ``optim.base_lr=1e-4``). Unknown keys, values of the wrong type and values out
of range are one-line errors (``ZeroSegError``). The resolved experiment config is saved with every
run and every checkpoint as a plain dict (``to_dict``) and rebuilt with ``from_dict``.

Fields marked [guess] correspond to the paper's open questions (``zeroseg-paper.md`` §10); their
defaults are the documented best guesses.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from zeroseg.errors import ZeroSegError
from zeroseg.runtime.atomic import atomic_write_text

T = TypeVar("T")

# The training-free dense readouts of a CLIP teacher (``zeroseg.models.dense_readout``).
READOUTS = ("maskclip", "sclip", "clearclip", "naclip")


@dataclass(frozen=True)
class EncoderConfig:
    """MAE-style ViT encoder (paper §2.1), built with ``timm.create_model``."""

    timm_name: str = "vit_base_patch16_224"  # timm architecture; sizes below override it
    image_size: int = 224  # training resolution (positional embeddings are resampled at test)
    patch_size: int = 16  # [guess 1] ViT-B/16
    width: int = 768
    depth: int = 12
    heads: int = 12
    mask_ratio: float = 0.6  # share of patches hidden from the encoder while training (Table 5)
    init_checkpoint: str = ""  # [guess 2] optional local timm/MAE checkpoint ("" = random init)

    def __post_init__(self) -> None:
        check(
            0 <= self.mask_ratio < 1, f"encoder.mask_ratio must be in [0, 1), got {self.mask_ratio}"
        )
        check(self.patch_size > 0, f"encoder.patch_size must be positive, got {self.patch_size}")
        check(
            self.image_size > 0 and self.image_size % self.patch_size == 0,
            f"encoder.image_size={self.image_size} must be a positive multiple of the patch size",
        )


@dataclass(frozen=True)
class DecoderConfig:
    """MAE reconstruction decoder (paper §2.1: 8 layers)."""

    width: int = 512
    depth: int = 8
    heads: int = 16
    norm_pix_loss: bool = False  # [guess 15] per-patch normalised pixel targets
    norm_eps: float = 1e-6  # LayerNorm eps of the blocks and the final norm (MAE: 1e-6)


@dataclass(frozen=True)
class SegHeadConfig:
    """GroupViT-style segmentation head: 5 layers, grouping after the 2nd and 4th (paper §2.1)."""

    width: int = 768  # [guess 3]
    heads: int = 12
    depths: tuple[int, ...] = (2, 2, 1)  # blocks before grouping 1, before grouping 2, after
    num_group_tokens: tuple[int, ...] = (32, 8)  # group tokens of the two grouping stages
    projector_hidden: int = 4096  # [guess 7] hidden size of the shared MLP (0 = single linear)
    # [guess 7] "mlp": Linear-GELU-Linear; "groupvit": GroupViT's ProjectMLP, Linear-BatchNorm-ReLU-
    # Linear (its 1x1 Conv1d layers), batch statistics over images and tokens
    projector: Literal["mlp", "groupvit"] = "mlp"
    norm_eps: float = 1e-5  # LayerNorm eps of every norm in the head (GroupViT: nn.LayerNorm, 1e-5)
    out_dim: int = 768  # must equal the teacher's embedding size (768 for ViT-L/14)
    gumbel: bool = True  # [guess 6] Gumbel noise on the assignment while training
    hard: bool = True  # [guess 6] one-hot (straight-through) assignment
    gumbel_tau: float = 1.0


@dataclass(frozen=True)
class TeacherConfig:
    """Frozen open_clip teacher (paper §3). Never trained, never checkpointed."""

    model: str = "ViT-L-14"  # open_clip model name (or a label when ``model_config`` is given)
    pretrained: str = "openai"  # open_clip tag, local checkpoint path, or "none" (random, seeded)
    model_config: dict[str, Any] = field(default_factory=dict)  # kwargs for open_clip.CLIP(...)
    context_length: int = 77  # tokenizer length used with ``model_config``
    grids: tuple[int, ...] = (1, 2, 3, 4)  # views: 1x1 + 2x2 + 3x3 + 4x4 = 30 (Table 3)
    seed: int = 0  # seeds random weights when pretrained == "none", so text and image sides agree
    # Dense targets for the student (beyond the paper; used when loss.dense_weight > 0): the
    # teacher's MaskCLIP dense readout of the training crop resized to ``dense_size`` pixels (0 =
    # the teacher's own input size), pooled to the student's token grid.
    dense_size: int = 0

    def __post_init__(self) -> None:
        check(self.dense_size >= 0, f"teacher.dense_size must be >= 0, got {self.dense_size}")
        check(
            len(self.grids) > 0 and self.grids[0] == 1 and all(g >= 1 for g in self.grids)
            and len(set(self.grids)) == len(self.grids),
            f"teacher.grids must start with 1 (view 0 is the whole crop) and list distinct "
            f"positive grid sizes, got {list(self.grids)}",
        )  # fmt: skip


@dataclass(frozen=True)
class LossConfig:
    """Loss terms and weights (paper §4)."""

    reconstruction_weight: float = 1.0  # [guess 11]
    distillation_weight: float = 1.0
    matching_weight: float = 1.0  # 0 disables segment matching (Table 4 ablations)
    # "nearest" is the paper; the others are options beyond it (losses.segment_matching_loss)
    matching: Literal["nearest", "one_to_one", "overlap", "inside"] = "nearest"
    distillation_views: Literal["all", "full"] = "all"  # "full" = Base: z to the full image only
    normalize: bool = True  # [guess 9] L2-normalise z, g and views before the L1 losses
    reduction: Literal["mean", "sum"] = "mean"  # [guess 10] over views and segment tokens
    # Beyond the paper, against grouping collapse (0 = off, the paper): weight of a term that makes
    # each patch's assignment confident while spreading patches over segments (losses.py).
    grouping_information_weight: float = 0.0
    # Beyond the paper (0 = off, the paper): weight of the dense term, each visible patch's
    # embedding (segment embeddings composed through the assignment maps) to the teacher's dense
    # readout at that patch (teacher.dense_size).
    dense_weight: float = 0.0
    # what the dense term trains: "all" (encoder, grouping and projector), or "content" (a second
    # head pass pools with the first pass's detached assignments: the term trains what a token's
    # content is made of, encoder included, but not where the assignment points)
    dense_gradient: Literal["all", "content"] = "all"

    # Beyond the paper (0 = off, the paper): weight of a sharp, text-free ranking term on the same
    # composed patch embeddings p_n (losses.dense_rank_loss): KL(softmax_m(t_n.u_m / T) ||
    # softmax_m(p_n.u_m / T)), T = dense_rank_temperature, the vocabulary u_m the image's visible
    # teacher dense targets ("patches") or its local teacher views ("views"). Needs the dense
    # targets (teacher.dense_size) like dense_weight; trains what dense_gradient says.
    dense_rank_weight: float = 0.0
    dense_rank_temperature: float = 0.05
    dense_rank_vocabulary: Literal["patches", "views"] = "patches"

    @property
    def uses_dense_targets(self) -> bool:
        """Whether a term needs the teacher's dense targets (dense_weight or dense_rank_weight)."""
        return bool(self.dense_weight or self.dense_rank_weight)

    def __post_init__(self) -> None:
        check(
            self.dense_rank_temperature > 0 and math.isfinite(self.dense_rank_temperature),
            f"loss.dense_rank_temperature must be > 0, got {self.dense_rank_temperature}",
        )
        weights = (
            "reconstruction", "distillation", "matching", "grouping_information", "dense",
            "dense_rank",
        )  # fmt: skip
        for name in weights:
            value = getattr(self, f"{name}_weight")
            check(
                value >= 0 and math.isfinite(value), f"loss.{name}_weight must be >= 0, got {value}"
            )


@dataclass(frozen=True)
class DataConfig:
    """Unlabelled training images: any folder, searched recursively (labels ignored)."""

    root: str = ""
    resize_short: int = 256  # [guess 13] resize short side, then centre-crop encoder.image_size
    num_workers: int = 4
    teacher_cache: str = ""  # folder of cached teacher views ("" = run the teacher online)
    shards: str = ""  # a pack of zeroseg pack (folder or URL), read instead of root
    # unreadable images (corrupt, truncated, decompression bombs) skipped and listed before a run
    # stops: training from a folder (RUN/skipped_images.json), the teacher cache and zeroseg pack
    # (in meta.json / manifest.json); counted per process, distinct files; 0 = stop at the first
    max_bad_images: int = 100

    def __post_init__(self) -> None:
        check(
            not (self.shards and self.teacher_cache),
            "data.shards and data.teacher_cache are exclusive (pack the views with zeroseg pack "
            "--views instead)",
        )
        check(self.resize_short > 0, f"data.resize_short must be positive, got {self.resize_short}")
        check(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")
        check(
            self.max_bad_images >= 0,
            f"data.max_bad_images must be >= 0, got {self.max_bad_images}",
        )


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with warm-up and cosine decay (paper §5, MAE conventions [guess 14])."""

    base_lr: float = 1.5e-4  # blr: lr = base_lr * batch_size / 256
    batch_size: int = 4096  # effective global batch (reached by gradient accumulation)
    micro_batch_size: int = 64  # images per device per forward
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    epochs: float = 80.0
    warmup_epochs: float = 20.0
    min_lr: float = 0.0
    grad_clip: float = 0.0  # max grad norm (0 = off)

    def __post_init__(self) -> None:
        check(self.batch_size > 0, f"optim.batch_size must be positive, got {self.batch_size}")
        check(
            self.micro_batch_size > 0,
            f"optim.micro_batch_size must be positive, got {self.micro_batch_size}",
        )
        check(self.base_lr > 0, f"optim.base_lr must be positive, got {self.base_lr}")
        check(self.epochs >= 0, f"optim.epochs must be >= 0, got {self.epochs}")
        check(
            self.warmup_epochs >= 0 and self.min_lr >= 0,
            "optim.warmup_epochs and optim.min_lr must be >= 0",
        )


@dataclass(frozen=True)
class TrainConfig:
    """Run-level settings."""

    steps: int = 0  # optimiser steps (0 = derive from epochs and dataset size)
    checkpoint_every: int = 1000  # optimiser steps between checkpoints (always one at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept on disk (0 = keep all)
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto = bf16 on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the student (after DDP); BENCHMARKS.md has the timings

    def __post_init__(self) -> None:
        check(self.steps >= 0, f"train.steps must be >= 0 (0 = from epochs), got {self.steps}")
        check(
            self.checkpoint_every > 0,
            f"train.checkpoint_every must be positive, got {self.checkpoint_every}",
        )
        check(self.log_every > 0, f"train.log_every must be positive, got {self.log_every}")
        check(self.keep_checkpoints >= 0, "train.keep_checkpoints must be >= 0 (0 = keep all)")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything a training run needs; saved with the run and with each checkpoint."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    seg_head: SegHeadConfig = field(default_factory=SegHeadConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check(
            not (self.loss.dense_rank_weight and self.loss.dense_rank_vocabulary == "views")
            or len(self.teacher.grids) > 1,
            "loss.dense_rank_vocabulary=views ranks against the local teacher views: it needs "
            "teacher.grids beyond [1] (or loss.dense_rank_vocabulary=patches)",
        )


# Options removed from the config (lab/NOTEBOOK.md, "Options removed from the config"): the value
# each always had unless a run chose otherwise; None = any value (it only qualified another option).
REMOVED_OPTIONS: dict[str, Any] = {
    "seg_head.cross_attention": True,
    "seg_head.group_residual": True,
    "teacher.dense_readout": "maskclip",
    "loss.matching_objective": "l1",
    "loss.matching_temperature": None,
    "loss.grouping_balance": "image",
    "loss.dense_level": "patch",
}
REMOVED_VALUES: dict[str, tuple[Any, ...]] = {
    "loss.matching": ("bidirectional",),
    "loss.dense_gradient": ("projector",),
}


def upgrade_saved_config(data: dict[str, Any]) -> dict[str, Any]:
    """A saved experiment config (checkpoint, release) with removed options dropped.

    A removed option at the value it always had is dropped silently; a run that chose a removed
    option or value cannot be rebuilt and is a one-line error naming it.
    """
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for key, old in {**REMOVED_OPTIONS, **REMOVED_VALUES}.items():
        section, name = key.split(".")
        values = data.get(section)
        if not isinstance(values, dict) or name not in values:
            continue
        value = values[name]
        if key in REMOVED_VALUES:
            if value in old:
                raise ZeroSegError(_removed_message(f"{key}={value}"))
            continue
        if old is not None and value != old:
            raise ZeroSegError(_removed_message(f"{key}={value}"))
        del values[name]
    return data


def saved_experiment_config(data: dict[str, Any]) -> ExperimentConfig:
    """The experiment config saved with a checkpoint or release (``upgrade_saved_config`` first)."""
    if not isinstance(data, dict):
        raise ZeroSegError("the saved experiment config must be a mapping of config keys")
    return from_dict(upgrade_saved_config(data))


def _removed_message(setting: str) -> str:
    return (
        f"this run was trained with {setting}, an option removed in zeroseg 0.2 (a measured "
        "failure, see lab/NOTEBOOK.md); train it again or load it with zeroseg 0.1"
    )


def preset_names() -> list[str]:
    """Names of the experiment presets shipped with the package (``zeroseg/configs/*.yaml``)."""
    files = resources.files("zeroseg").joinpath("configs").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".yaml"))


def load_config(
    preset: str | None = None, overrides: Sequence[str] | None = None
) -> ExperimentConfig:
    """Resolve an experiment config from defaults, a preset (name or YAML path) and overrides."""
    return resolve_config(ExperimentConfig, preset, overrides)


def resolve_config(
    cls: type[T],
    preset: str | Path | None = None,
    overrides: Sequence[str] | None = None,
    base: T | None = None,
) -> T:
    """The one way into a config: ``base`` (or the defaults) < preset YAML < ``key=value`` overrides.

    Args:
        cls: the config dataclass.
        preset: an experiment preset name (``preset_names``) or a YAML file of ``cls``'s fields.
        overrides: ``key=value`` strings; values are read as YAML (``true``, ``1e-4``, ``[1, 2]``).
        base: a value of ``cls`` to start from instead of its defaults (e.g. a protocol's settings).

    Raises:
        ZeroSegError: an unknown key, a value of the wrong type or out of range, a malformed override.
    """
    data: dict[str, Any] = to_dict(base) if base is not None else {}
    if preset:
        _merge(data, _read_preset(preset), cls)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ZeroSegError(f"override {item!r} is not of the form key=value")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            raise ZeroSegError(f"override {item!r}: the value is not valid YAML") from None
        _set_dotted(data, key.strip(), parsed)
    return from_dict(data, cls)


def _read_preset(preset: str | Path) -> dict[str, Any]:
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text()
    else:
        resource = resources.files("zeroseg").joinpath("configs").joinpath(f"{preset}.yaml")
        if not resource.is_file():
            names = ", ".join(preset_names())
            raise ZeroSegError(f"unknown preset {str(preset)!r}: use one of {names} or a YAML path")
        text, path = resource.read_text(), Path(str(resource))
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ZeroSegError(f"cannot parse config {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ZeroSegError(f"config {path} must be a mapping of config keys")
    return data


def _merge(data: dict[str, Any], update: dict[str, Any], cls: type) -> None:
    """Merge ``update`` into ``data``: sections (nested dataclasses) merge, other values replace."""
    hints = typing.get_type_hints(cls)
    for key, value in update.items():
        hint = hints.get(key)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            section = data.get(key)
            data[key] = section = dict(section) if isinstance(section, dict) else {}
            _merge(section, value, hint)
        else:
            data[key] = value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ZeroSegError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (lists for tuples, strings for paths) for YAML, JSON and checkpoints."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(dataclasses.asdict(config))


@typing.overload
def from_dict(data: dict[str, Any], cls: type[T], prefix: str = "") -> T: ...


@typing.overload
def from_dict(data: dict[str, Any], *, prefix: str = "") -> ExperimentConfig: ...


def from_dict(data: dict[str, Any], cls: type[Any] = ExperimentConfig, prefix: str = "") -> Any:
    """Build a dataclass from a nested dict, checking keys and coercing values to field types."""
    if not isinstance(data, dict):
        raise ZeroSegError(f"config section {prefix.rstrip('.') or 'root'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ZeroSegError(
            f"unknown config key {prefix}{unknown[0]} (known: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(value, hint, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    bad = ZeroSegError(f"config key {key}: {value!r} is not a valid {_type_name(hint)}")
    if origin is Literal:
        if value not in args:
            raise ZeroSegError(f"config key {key}: {value!r} is not one of {list(args)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _coerce(value, option, key)
            except ZeroSegError:
                continue
        raise bad
    if origin is tuple:
        if not isinstance(value, list | tuple):
            value = [value]
        item_type = args[0]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, item_type, key) for v in value)
        if len(value) != len(args):
            raise bad
        return tuple(_coerce(v, t, key) for v, t in zip(value, args))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "1e-3" as a string
        except ValueError:
            raise bad from None
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if hint is str and value is None:
        return ""
    if hint is Path and isinstance(value, str | Path):
        return Path(value)
    raise bad


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def check(condition: bool, message: str) -> None:
    """Raise a one-line ``ZeroSegError(message)`` unless ``condition`` (config range checks)."""
    if not condition:
        raise ZeroSegError(message)


def config_yaml(config: Any) -> str:
    """A resolved config as YAML text, fields in their declared order."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def save_config(config: Any, path: Path) -> None:
    """Write a resolved config as YAML, atomically."""
    atomic_write_text(path, config_yaml(config))
