"""The training loop: build everything, resume, then one readable loop over optimiser steps.

Works single-process on CPU or GPU and under ``torchrun`` (DDP wraps the student only; gloo on CPU,
NCCL on GPU). Gradient accumulation reaches the effective batch ``optim.batch_size`` from
``optim.micro_batch_size`` images per device per forward. bf16 autocast on CUDA.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from zeroseg.config import ExperimentConfig, save_config, to_dict
from zeroseg.data.training_data import training_data
from zeroseg.errors import ZeroSegError
from zeroseg.models.build import build_zeroseg
from zeroseg.models.teacher import build_teacher, check_student_matches
from zeroseg.runtime.atomic import atomic_write_text
from zeroseg.runtime.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    cleanup,
    init_distributed,
    select_device,
)
from zeroseg.runtime.progress import progress as progress_bar
from zeroseg.training import checkpoint as ckpt
from zeroseg.training.optim import build_optimizer, effective_lr, lr_at
from zeroseg.training.task import DistillationTask

logger = logging.getLogger(__name__)
LOSS_KEYS = (
    "loss",
    "reconstruction_loss",
    "distillation_loss",
    "matching_loss",
    "grouping_loss",
    "dense_loss",
    "dense_rank_loss",
)


@dataclass
class Schedule:
    """Derived sizes of a run (computed, never written back into the config)."""

    accumulation: int
    total_steps: int
    warmup_steps: int
    peak_lr: float


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    history: list[dict] = field(default_factory=list)  # one dict of mean losses per step
    student: torch.nn.Module | None = None  # the trained (unwrapped) student


def make_schedule(config: ExperimentConfig, dataset_size: int, world_size: int) -> Schedule:
    """Accumulation steps, total and warm-up steps, and the peak LR for this run."""
    optim = config.optim
    per_step = optim.micro_batch_size * world_size
    if optim.batch_size % per_step:
        raise ZeroSegError(
            f"optim.batch_size={optim.batch_size} is not a multiple of micro_batch_size x world size "
            f"= {optim.micro_batch_size} x {world_size}"
        )
    require_steps(config)
    steps_per_epoch = max(1, dataset_size // optim.batch_size)
    total = config.train.steps or math.ceil(optim.epochs * steps_per_epoch)
    warmup = round(total * optim.warmup_epochs / optim.epochs) if optim.epochs > 0 else 0
    return Schedule(
        optim.batch_size // per_step, total, warmup, effective_lr(optim.base_lr, optim.batch_size)
    )


def require_steps(config: ExperimentConfig) -> None:
    """A one-line error for a run with nothing to train (no ``train.steps`` and 0 epochs): with
    epochs > 0 there is at least one step, however small the data."""
    if not config.train.steps and not config.optim.epochs:
        raise ZeroSegError(
            f"nothing to train: optim.epochs={config.optim.epochs:g} and no train.steps; set "
            "optim.epochs > 0 or pass --steps N"
        )


def _autocast(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _write_env(run_dir: Path, info: DistInfo, device: torch.device) -> None:
    import open_clip
    import timm

    lines = [
        f"python {platform.python_version()}",
        f"torch {torch.__version__}",
        f"timm {timm.__version__}",
        f"open_clip {open_clip.__version__}",
        f"device {device}",
        f"world_size {info.world_size}",
        f"machine {platform.machine()} {platform.node()}",
    ]
    atomic_write_text(run_dir / "env.txt", "\n".join(lines) + "\n")


def check_writable_folder(folder: Path, what: str) -> None:
    """A one-line error when ``folder`` cannot be a writable folder (it is a file, or the nearest
    existing folder above it refuses a new entry, as below ``/proc``); creates nothing."""
    if folder.exists():
        if not folder.is_dir():
            raise ZeroSegError(f"{what} {folder} exists and is not a folder")
        parent = folder
    else:
        parent = folder.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise ZeroSegError(f"{what} {folder} cannot be created: {parent} is not a folder")
    try:  # the one sure test: make (and remove) an entry where the folder or its parents will go
        probe = tempfile.mkdtemp(prefix=".zeroseg-probe-", dir=parent)
        os.rmdir(probe)
    except OSError as error:
        raise ZeroSegError(
            f"{what} {folder} cannot be created or written: {parent}: {error.strerror or error}"
        ) from None


def _write_run_files(run_dir: Path, config: ExperimentConfig, info: DistInfo, device) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ZeroSegError(f"cannot create the run folder {run_dir}: {error.strerror}") from None
    save_config(config, run_dir / "config.yaml")
    _write_env(run_dir, info, device)


def train(
    config: ExperimentConfig, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> TrainResult:
    """Train a ZeroSeg student as ``config`` says, writing checkpoints to ``run_dir``."""
    run_dir = Path(run_dir)
    require_steps(config)  # before anything is built, read or written
    check_writable_folder(run_dir, "--out")
    device = select_device(config.train.device)
    info = init_distributed(device)
    try:
        return _train(config, run_dir, resume, progress, device, info)
    finally:
        cleanup(info)


def _train(
    config: ExperimentConfig,
    run_dir: Path,
    resume: bool,
    progress: bool,
    device: torch.device,
    info: DistInfo,
) -> TrainResult:
    teacher = build_teacher(config.teacher).to(device)
    check_student_matches(teacher, config.seg_head.out_dim, f"teacher {config.teacher.model}")
    data = training_data(config, info, device, teacher, progress)
    schedule = make_schedule(config, data.num_images, info.world_size)
    # Seeded here, after the teacher and its view cache (which may draw random numbers), so that
    # the student's initialisation and masks depend only on the seed.
    torch.manual_seed(config.train.seed + info.rank)
    use_decoder = config.loss.reconstruction_weight > 0
    student = build_zeroseg(
        config.encoder, config.seg_head, config.decoder if use_decoder else None
    )
    student.to(device)
    optimizer = build_optimizer(
        student, schedule.peak_lr, config.optim.weight_decay, config.optim.betas
    )
    start_step = _maybe_resume(run_dir, resume, student, optimizer, info.rank, info.world_size)
    task = DistillationTask(
        student, teacher, config.loss, config.encoder.mask_ratio, config.decoder.norm_pix_loss
    )
    if info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        task.student = DistributedDataParallel(student, device_ids=ids)
    if config.train.compile:
        # in place, around DDP when there is one (PyTorch's order: DDP, then compile), so the
        # module and its state dict keep their names and DDP's no_sync still applies
        task.student.compile()
    if info.is_main:
        logger.info(
            "%d images; %d steps (warm-up %d) of %d images (%d x %d ranks x %d accumulation); "
            "peak lr %.3g; student %.2fM parameters",
            data.num_images, schedule.total_steps, schedule.warmup_steps, config.optim.batch_size,
            config.optim.micro_batch_size, info.world_size, schedule.accumulation,
            schedule.peak_lr, sum(p.numel() for p in student.parameters()) / 1e6,
        )  # fmt: skip
    if info.is_main and start_step:
        _truncate_jsonl(run_dir / "metrics.jsonl", start_step)
    data.record_skipped_in(run_dir, info.rank, keep=start_step > 0)
    batches = data.batches(start_step * schedule.accumulation)
    result = TrainResult(run_dir, start_step, student=student)
    bar = progress_bar(
        total=schedule.total_steps,
        initial=start_step,
        enabled=progress and info.is_main,
        desc="train",
    )
    task.train()
    step = start_step
    try:
        for step in range(start_step, schedule.total_steps):
            lr = lr_at(
                step,
                schedule.peak_lr,
                schedule.warmup_steps,
                schedule.total_steps,
                config.optim.min_lr,
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            last = step + 1 == schedule.total_steps
            checkpoint_now = last or (step + 1) % config.train.checkpoint_every == 0
            try:
                losses = train_step(
                    task, batches, optimizer, schedule.accumulation, device, config, info
                )
                record = {"step": step + 1, "lr": lr, **losses}
                if step == start_step and info.is_main:
                    # only now that the data gave a whole step: a run that stops on bad data
                    # before it leaves no config.yaml and env.txt behind
                    _write_run_files(run_dir, config, info, device)
                # logged before the checkpoint: a kill between the two replays this step on resume
                # (its line is dropped and rewritten), never leaves a checkpoint without its line
                if info.is_main and ((step + 1) % config.train.log_every == 0 or step == 0):
                    _append_jsonl(run_dir / "metrics.jsonl", record)
                if checkpoint_now:
                    _save(run_dir, step + 1, task, optimizer, config, info)
            except NonFiniteLossError as error:
                latest = ckpt.latest_checkpoint(run_dir)
                raise ZeroSegError(
                    f"training stopped at step {step + 1}: {error}; the last good checkpoint is "
                    f"{latest or 'none (no checkpoint was written yet)'}"
                ) from None
            result.history.append(record)
            bar.update(1)
            bar.set_postfix(
                {k.replace("_loss", ""): f"{v:.4f}" for k, v in record.items() if "loss" in k}
            )
        result.steps = schedule.total_steps
    except KeyboardInterrupt:
        logger.warning("interrupted; resume with --resume from the last checkpoint")
        raise
    finally:
        bar.close()
    return result


class NonFiniteLossError(RuntimeError):
    """A loss term came out NaN or infinite; the optimiser step was not taken."""


def train_step(
    task: DistillationTask,
    batches,
    optimizer: torch.optim.Optimizer,
    accumulation: int,
    device: torch.device,
    config: ExperimentConfig,
    info: DistInfo | None = None,
) -> dict[str, float]:
    """One optimiser step over ``accumulation`` micro-batches.

    Returns:
        The mean of each loss term the task returned (``LOSS_KEYS``; absent terms are left out),
        averaged over micro-batches and ranks.

    Raises:
        NonFiniteLossError: on every rank alike when any term is NaN or infinite on any rank; the
            weights are then left as they were before the step (as MAE's loop stops).
    """
    sums = torch.zeros(len(LOSS_KEYS), device=device)
    counts = torch.zeros(len(LOSS_KEYS), device=device)
    for micro in range(accumulation):
        batch = next(batches)
        images, views, dense = _unpack(batch)
        images = images.to(device, non_blocking=True)
        views = views.to(device, non_blocking=True) if views is not None else None
        dense = dense.to(device, non_blocking=True) if dense is not None else None
        last = micro == accumulation - 1
        with contextlib.ExitStack() as stack:
            if not last and isinstance(task.student, DistributedDataParallel):
                stack.enter_context(task.student.no_sync())  # gradients meet once, at the last
            with _autocast(device, config.train.precision):
                out = task(images, views, dense)
            (out["loss"] / accumulation).backward()
        for i, key in enumerate(LOSS_KEYS):
            if key in out:
                sums[i] += out[key].detach().float()
                counts[i] += 1
    totals = all_reduce_mean(torch.cat([sums, counts]), info or DistInfo())
    sums, counts = totals[: len(LOSS_KEYS)], totals[len(LOSS_KEYS) :]
    present = counts > 0
    means = {k: float(s / c) for k, s, c, p in zip(LOSS_KEYS, sums, counts, present) if p}
    if not all(math.isfinite(v) for v in means.values()):
        optimizer.zero_grad(set_to_none=True)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in means.items())
        raise NonFiniteLossError(f"the loss is not finite ({shown})")
    if config.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(task.student.parameters(), config.optim.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return means


def _maybe_resume(
    run_dir: Path, resume: bool, student, optimizer, rank: int = 0, world_size: int = 1
) -> int:
    latest = ckpt.latest_checkpoint(run_dir)
    if not resume:
        if latest is not None:
            raise ZeroSegError(
                f"{run_dir} already holds checkpoints: pass --resume to continue, or choose a new --out"
            )
        return 0
    for stale in ckpt.remove_partial_writes(run_dir):
        logger.warning("removed %s, left by an interrupted checkpoint write", stale.name)
    latest, state = _newest_good_checkpoint(run_dir)
    if latest is None:
        logger.warning("--resume: no checkpoint in %s, starting from step 0", run_dir)
        return 0
    try:
        student.load_state_dict(ckpt.clean_state_dict(state["model"]))
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0]
        raise ZeroSegError(
            f"cannot resume from {latest}: it does not match this config ({first})"
        ) from None
    rng_ranks = state.get("rng_ranks")
    if rng_ranks is not None and len(rng_ranks) == world_size:
        torch.set_rng_state(rng_ranks[rank].clone())
    elif "rng" in state:
        torch.set_rng_state(state["rng"])
    logger.info("resumed from %s at step %d", latest, state["step"])
    return int(state["step"])


def _newest_good_checkpoint(run_dir: Path):
    """(path, state) of the newest checkpoint that reads and matches its checksum; a corrupt one
    is skipped with a warning naming it and the one used instead. (None, None) when none."""
    found = ckpt.list_checkpoints(run_dir)
    for index in range(len(found) - 1, -1, -1):
        try:
            return found[index], ckpt.load_checkpoint(found[index])
        except ZeroSegError as error:
            fallback = found[index - 1].name if index else "none left: starting from step 0"
            logger.warning(
                "skipping %s (%s); falling back to %s", found[index].name, error, fallback
            )
    return None, None


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep the records of steps <= ``last_step`` (a resumed run rewrites the later ones)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if _record_step(line) <= last_step]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _record_step(line: str) -> float:
    try:
        return json.loads(line).get("step", float("inf"))
    except (json.JSONDecodeError, AttributeError):
        return float("inf")  # a line cut by a kill: dropped


def _save(
    run_dir, step, task: DistillationTask, optimizer, config: ExperimentConfig, info: DistInfo
) -> None:
    weights = task.unwrapped_student.state_dict()
    if not all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()):
        raise NonFiniteLossError("the weights are not finite after the optimiser step")
    rng_ranks: list | None = None
    if info.enabled:  # every rank draws its own masks: each one's generator, for an exact resume
        rng_ranks = [None] * info.world_size
        torch.distributed.all_gather_object(rng_ranks, torch.get_rng_state())
    if info.is_main:
        state = {
            "step": step,
            "config": to_dict(config),
            "model": weights,
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "saved_at": time.time(),
        }
        if rng_ranks is not None:
            state["rng_ranks"] = torch.stack(rng_ranks)
        ckpt.save_checkpoint(run_dir, state, keep=config.train.keep_checkpoints)
    barrier(info)


def _append_jsonl(path: Path, record: dict) -> None:
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    except OSError as error:
        raise ZeroSegError(f"cannot write {path}: {error.strerror or error}") from None


def _unpack(batch) -> tuple:
    """A batch of images, (images, views) from the view cache, or (images, views, dense)."""
    if not isinstance(batch, list | tuple):
        return batch, None, None
    return (*batch, None)[:3] if len(batch) == 2 else tuple(batch)
