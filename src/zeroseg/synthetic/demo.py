"""``zeroseg demo``: the whole method end to end in a synthetic world, on a CPU, in minutes.

1. Scenes: unlabelled training images (a plain image folder) and a labelled VOC-style validation
   tree, written to disk so the library's ordinary readers are used.
2. Teacher: the small CLIP the package ships, trained on captioned crops of scenes at every scale
   (captions only; ``--train-teacher`` retrains it into the cache).
3. Student: the core training loop distils the teacher into a ZeroSeg student, unlabelled images only.
4. Evaluation: the student's zero-shot segmentation (class names through the teacher's text encoder)
   against teacher-only baselines (grid crops, sliding windows) on the same validation scenes.
5. Report: ``metrics.json`` and ``report.md`` with pictures.

The synthetic world uses only public library entry points; the core knows nothing about it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zeroseg.benchmark.datasets import VOCSegmentation
from zeroseg.config import ExperimentConfig, check, load_config
from zeroseg.errors import ZeroSegError
from zeroseg.inference.config import InferenceConfig
from zeroseg.inference.crop_segmenter import GridCropSegmenter, SlidingCropSegmenter
from zeroseg.inference.readout_segmenter import DenseCLIPSegmenter
from zeroseg.inference.release import export_release
from zeroseg.inference.segmenter import Segmenter, WindowSegmenter, changed_fields
from zeroseg.runtime.atomic import atomic_write_text
from zeroseg.synthetic import writers
from zeroseg.synthetic.caption_clip import CaptionCLIPConfig, load_or_train_caption_clip
from zeroseg.synthetic.evaluate import evaluate_methods
from zeroseg.synthetic.report import write_report
from zeroseg.training.loop import train

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where the caption-trained teacher is kept between runs (``$XDG_CACHE_HOME/zeroseg``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "zeroseg"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo world and run; the defaults fit in about 10 minutes on 2 CPU cores.

    Resolved like every config (``zeroseg.config.resolve_config``); ``zeroseg demo``'s flags are
    overrides of these fields, its ``key=value`` arguments ``student_overrides``.
    """

    out_dir: Path = Path("zeroseg-demo")
    cache_dir: Path = field(default_factory=default_cache_dir)
    seed: int = 0
    train_images: int = 3000
    val_images: int = 200
    image_size: int = 64
    # student optimiser steps (the preset's dense ranking term keeps improving with training:
    # world 0 at 400 steps 35.2 mIoU, objects 12.6; at 800 39.5, 15.3; lab/NOTEBOOK.md)
    steps: int = 800
    preset: str = "synthetic"
    student_overrides: tuple[str, ...] = ()  # student experiment config overrides (key=value)
    teacher: CaptionCLIPConfig = field(default_factory=CaptionCLIPConfig)
    train_teacher: bool = False  # retrain the teacher instead of using the shipped or cached one

    def __post_init__(self) -> None:
        for name in ("train_images", "val_images", "image_size", "steps"):
            check(getattr(self, name) > 0, f"demo {name} must be positive")
        load_config(self.preset, list(self.student_overrides))  # refuse bad overrides up front


def teacher_cache(cfg: DemoConfig) -> Path:
    """Where a teacher trained by the demo is kept (the package ships the default one)."""
    return cfg.cache_dir / "teacher"


def write_world(cfg: DemoConfig) -> tuple[Path, Path]:
    """Training image folder and validation tree under ``out_dir/data`` (regenerated if absent)."""
    data = cfg.out_dir / "data"
    train_dir, val_dir = data / "train", data / "val"
    stamp = data / "world.json"
    identity = {
        "seed": cfg.seed, "train": cfg.train_images, "val": cfg.val_images, "size": cfg.image_size
    }  # fmt: skip
    if not (stamp.is_file() and json.loads(stamp.read_text()) == identity):
        writers.write_training_images(train_dir, cfg.train_images, cfg.seed, cfg.image_size)
        writers.write_validation_tree(val_dir, cfg.val_images, cfg.seed + 1, cfg.image_size)
        atomic_write_text(stamp, json.dumps(identity))
    return train_dir, val_dir


def student_config(cfg: DemoConfig, train_dir: Path, teacher_path: Path) -> ExperimentConfig:
    """The student's experiment config with the caption-trained teacher filled in."""
    meta = json.loads(teacher_path.with_suffix(".json").read_text())
    teacher = [
        f"teacher.pretrained={teacher_path}",
        f"teacher.model_config={json.dumps(meta['model_config'])}",
        f"teacher.context_length={meta['context_length']}",
        f"seg_head.out_dim={meta['model_config']['embed_dim']}",
    ]
    run = [
        f"data.root={train_dir}",
        f"data.teacher_cache={cfg.out_dir / 'teacher_views'}",
        f"encoder.image_size={cfg.image_size}",
        f"data.resize_short={cfg.image_size}",
        f"train.steps={cfg.steps}",
        f"train.seed={cfg.seed}",
    ]
    return load_config(cfg.preset, teacher + run + list(cfg.student_overrides))


DENSE_SHORT_SIDES = (128, 256)  # MaskCLIP readout resolutions: 4x4 and 8x8 stride-32 features


def teacher_baselines(teacher, image_size: int) -> dict[str, WindowSegmenter]:
    """The teacher-only baselines: grid crops (2x2, 3x3, 4x4), two sliding windows, and the
    MaskCLIP-style dense readout of the teacher (the paper's own teacher-only baseline) with the
    scene enlarged to each of ``DENSE_SHORT_SIDES``."""
    methods: dict[str, WindowSegmenter] = {}
    for grid in (2, 3, 4):
        methods[f"teacher_grid{grid}x{grid}"] = GridCropSegmenter(
            teacher, grid, templates="simple1"
        )
    for window, stride in ((0.5, 0.125), (0.375, 0.125)):
        name = f"teacher_sliding{round(window * image_size)}s{round(stride * image_size)}"
        methods[name] = SlidingCropSegmenter(teacher, window, stride, templates="simple1")
    for short in DENSE_SHORT_SIDES:
        dense = InferenceConfig(short_side=short, mode="whole", templates="simple1")
        methods[f"teacher_dense{short}"] = DenseCLIPSegmenter(teacher, dense)
    return methods


# scenes are segmented in one window at the model's size (the scenes' own), with CLIP's plain
# "a photo of a {}."; beyond the paper (lab/NOTEBOOK.md, 2026-12-05), each pixel is named by its
# composed embedding (what the dense terms train) and the scores are refined by PAMR (10 steps,
# NACLIP's neighbour rings (8, 16) of a 224 px window scaled to the 64 px scenes: (2, 4)); the
# exported release records the same (a big photo is resized, not tiled)
STUDENT_INFERENCE = InferenceConfig(
    mode="whole", templates="simple1", pixel_readout="composed", pamr_steps=10,
    pamr_dilations=(2, 4),
)  # fmt: skip


def build_methods(run_dir: Path, class_names: list[str], image_size: int) -> dict:
    """The student and the teacher-only baselines, each with the world's vocabulary set.

    ``zeroseg`` is the student as the demo ships it; ``zeroseg_composed`` the same without PAMR;
    ``zeroseg_segments`` the paper's readout (each pixel its segment's class, no PAMR). The
    teacher's best readout is also scored with the same PAMR (``teacher_dense128_pamr``), so the
    refinement is not credited to the student alone.
    """
    student = Segmenter.from_checkpoint(run_dir, STUDENT_INFERENCE, device="cpu")
    teacher = teacher_baselines(student.teacher, image_size)
    methods = {
        "zeroseg": student,
        "zeroseg_composed": student.with_config(pamr_steps=0),
        "zeroseg_segments": student.with_config(pixel_readout="segments", pamr_steps=0),
        **teacher,
        "teacher_dense128_pamr": teacher["teacher_dense128"].with_config(
            pamr_steps=STUDENT_INFERENCE.pamr_steps,
            pamr_dilations=STUDENT_INFERENCE.pamr_dilations,
        ),
    }
    for method in methods.values():
        method.set_vocabulary(class_names)
    return methods


def _drop_stale_cache(config: ExperimentConfig) -> None:
    """The demo owns its view cache: rebuild it when the teacher or the world changed (a cache
    of the same world and teacher that was interrupted is kept and finished)."""
    cache = Path(config.data.teacher_cache)
    if not cache.is_dir():
        return
    from zeroseg.data.images import ImageFolder
    from zeroseg.data.teacher_cache import cache_identity

    images = ImageFolder(config.data.root, config.encoder.image_size, config.data.resize_short)
    expected = cache_identity(config, images)
    files = [cache / n for n in ("meta.json", "job.json") if (cache / n).is_file()]
    saved: dict[str, Any] = json.loads(files[0].read_text()) if files else {}
    if any(saved.get(k) != v for k, v in expected.items()):
        shutil.rmtree(cache)


def run_demo(cfg: DemoConfig, progress: bool = True) -> dict:
    """Run the whole chain and write the report; returns ``metrics.json``'s content."""
    torch.manual_seed(cfg.seed)
    start = time.time()
    if cfg.out_dir.exists() and not cfg.out_dir.is_dir():
        raise ZeroSegError(f"--out {cfg.out_dir} exists and is not a folder")
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    train_dir, val_dir = write_world(cfg)
    logger.info("world: %d training scenes, %d validation scenes in %s", cfg.train_images,
                cfg.val_images, cfg.out_dir / "data")  # fmt: skip
    teacher_path = load_or_train_caption_clip(
        cfg.teacher, teacher_cache(cfg), progress, retrain=cfg.train_teacher
    )
    teacher_meta = json.loads(teacher_path.with_suffix(".json").read_text())
    config = student_config(cfg, train_dir, teacher_path)
    run_dir = cfg.out_dir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # every demo trains its student afresh
    _drop_stale_cache(config)
    train(config, run_dir, progress=progress)
    dataset = VOCSegmentation(val_dir, split="val")
    methods = build_methods(run_dir, list(dataset.class_names), cfg.image_size)
    metrics, predictions = evaluate_methods(methods, dataset, dataset.class_names, progress)
    metrics["teacher_zero_shot"] = teacher_meta["zero_shot"]
    metrics["teacher_view_accuracy"] = teacher_meta.get("view_accuracy")
    baselines = {
        k: v["miou"] for k, v in metrics.items() if k.startswith("teacher_") and "miou" in v
    }
    best = max(baselines, key=lambda name: baselines[name])
    metrics["summary"] = {
        "best_baseline": best,
        "ratio_to_best_baseline": round(metrics["zeroseg"]["miou"] / max(baselines[best], 1e-9), 3),
        "seconds": round(time.time() - start, 1),
        "seed": cfg.seed,
    }
    atomic_write_text(cfg.out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_report(cfg.out_dir, dataset, metrics, predictions, best)
    export_release(
        run_dir, release_dir(cfg), inference=changed_fields(STUDENT_INFERENCE),
        results={k: {"miou": v["miou"]} for k, v in metrics.items() if "miou" in v},
    )  # fmt: skip
    return metrics


def release_dir(cfg: DemoConfig) -> Path:
    """Where the demo's student is exported as a release (``zeroseg serve --checkpoint``)."""
    return cfg.out_dir / "model"


def summary_lines(metrics: dict, cfg: DemoConfig) -> list[str]:
    """What ``zeroseg demo`` prints: each method's mIoU, the ratio to the best baseline, where the
    report is, and the command that serves the student."""
    lines = [
        f"{name:28s} mIoU {values['miou']:.2f}  pixel accuracy {values['pixel_accuracy']:.2f}"
        for name, values in metrics.items()
        if "miou" in values
    ]
    summary = metrics["summary"]
    classes = ", ".join(metrics["zeroseg"]["per_class_iou"])
    return [
        *lines,
        f"zeroseg / {summary['best_baseline']}: {summary['ratio_to_best_baseline']}x",
        f"report: {cfg.out_dir / 'report.md'}",
        f'serve the student: zeroseg serve --checkpoint {release_dir(cfg)} --classes "{classes}"',
    ]
