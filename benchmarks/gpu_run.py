"""Paper-scale speed, measured in one run: training step, teacher cache, inference, projection.

Everything is random (weights, images, cached views): no network, no dataset. On one recent NVIDIA
GPU it finishes in under 8 minutes (``--budget-s``: sections that would start later are skipped
and say so), writes one JSON (``--out``, rewritten after every section so a killed run keeps what
it measured) and prints a table:

- training step of the ``paper`` preset (ViT-B/16 student, 60 % masking, head, decoder; cached
  views, so no teacher in the step; the loop's own ``train_step``, bf16 autocast on CUDA):
  images/s, peak memory and MFU (FLOPs counted by ``zeroseg.training.cost``) at the largest
  micro-batch that fits and at the paper's per-GPU share of batch 4096 (``--gpus`` 8: 512 images,
  micro-batch 64 x 8 accumulation), eager and ``torch.compile``d;
- teacher cache: a random ViT-L/14 on 30 views per image, bf16 autocast: images/s, and hours for
  ImageNet-1k;
- inference at batch 1: the student (at ``precision`` fp32, bf16 and fp16: autocast on CUDA) and
  the MaskCLIP / SCLIP / ClearCLIP / NACLIP readouts (fp32) of a ViT-B/16 and a ViT-L/14, at the
  VOC protocol's geometry (500x375 image, short side 448, 448 windows, stride 224) and on one
  224x224 image: images/s, peak memory and the precision the forward ran at;
- the 80-epoch projection from the measured rates (train + cache, GPU-hours).

    python benchmarks/gpu_run.py                          # on the GPU: the whole run, < 8 min
    python benchmarks/gpu_run.py --tiny --out /tmp/g.json  # tiny sizes on CPU, seconds (the tests)
    python benchmarks/gpu_run.py --paper-size-one-step --device cpu   # paper sizes, one rep each
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from zeroseg.config import ExperimentConfig, load_config
from zeroseg.inference.config import InferenceConfig, Precision
from zeroseg.inference.methods import build_method
from zeroseg.inference.precision import autocast_dtype
from zeroseg.inference.readout_segmenter import DenseCLIPSegmenter
from zeroseg.inference.segmenter import Segmenter, WindowSegmenter
from zeroseg.models.attention import fused_attention_count
from zeroseg.models.build import build_zeroseg
from zeroseg.models.teacher import CLIPTeacher, build_teacher
from zeroseg.models.zeroseg import ZeroSeg
from zeroseg.runtime.machine import describe
from zeroseg.training.cost import IMAGENET_TRAIN, per_image_flops
from zeroseg.training.loop import train_step
from zeroseg.training.optim import build_optimizer
from zeroseg.training.task import DistillationTask

READOUTS = ("maskclip", "sclip", "clearclip", "naclip")
STUDENT_PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")  # InferenceConfig.precision
# dense bf16 tensor-core peak (TFLOP/s) by a substring of the device name; --peak-tflops overrides
PEAK_BY_NAME = (
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
    ("V100", 125.0),
)


class Sizes:
    """What each mode measures: presets, batch sizes, repetitions."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.tiny = args.tiny
        self.preset = "tiny" if args.tiny else "paper"
        self.teachers = ["tiny"] if args.tiny else ["ViT-B-16", "ViT-L-14"]
        one = args.tiny or args.paper_size_one_step
        self.reps = 1 if args.paper_size_one_step else (2 if args.tiny else 10)
        self.warmup = 0 if args.paper_size_one_step else (1 if args.tiny else 2)
        self.search = device.type == "cuda" and not one
        self.micro_batches = [2] if one else [64, 128, 256, 512, 1024]
        self.share = 4 if one else 4096 // args.gpus  # images per GPU per optimiser step
        self.share_micro = 2 if one else 64
        self.cache_batches = [1] if one else [16, 32, 64]
        self.inference_reps = 1 if one else 10
        self.inference_warmup = 0 if args.paper_size_one_step else 1
        self.image = (375, 500)
        self.short_side, self.window, self.stride = (48, 48, 24) if args.tiny else (448, 448, 224)
        self.small = 32 if args.tiny else 224


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("gpu_run.json"))
    parser.add_argument("--tiny", action="store_true", help="tiny preset and teacher, seconds")
    parser.add_argument("--paper-size-one-step", action="store_true", help="one rep of each")
    parser.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                        help="also measure torch.compile (auto: on CUDA only)")  # fmt: skip
    parser.add_argument("--gpus", type=int, default=8, help="GPUs sharing the batch of 4096")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="0: from the GPU's name")
    parser.add_argument("--only", nargs="+", default=[], metavar="SECTION",
                        help="run only these sections (flops train teacher_cache inference "
                        "train_compiled projection)")  # fmt: skip
    parser.add_argument("--budget-s", type=float, default=0.0,
                        help="start no section after (0: 450 s on CUDA, none elsewhere)")  # fmt: skip
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    torch._dynamo.config.automatic_dynamic_shapes = False  # one static graph per micro-batch
    if not args.budget_s:
        args.budget_s = 450.0 if device.type == "cuda" else float("inf")
    sizes = Sizes(args, device)
    compile_on = args.compile == "on" or (args.compile == "auto" and device.type == "cuda")
    run = Run(args, device, sizes)
    run.section("flops", lambda: per_image_flops(preset=sizes.preset))
    config = load_config(sizes.preset, ["teacher.pretrained=none"])
    teacher = build_teacher(config.teacher)  # the preset's, random weights; on the CPU while the
    # training step runs (cached views: the step never calls it, and it is not in its memory)
    run.section("train", lambda: train_rows(run, config, teacher, compiled=False))
    teacher.to(device)
    run.section("teacher_cache", lambda: teacher_cache(run, teacher))
    run.section("inference", lambda: inference_rows(run, config, teacher))
    teacher.to("cpu")
    if compile_on:  # last: compiling takes minutes, and the other figures come first
        run.section("train_compiled", lambda: train_rows(run, config, teacher, compiled=True))
    else:
        run.result["skipped"]["train_compiled"] = f"--compile {args.compile} on {device.type}"
    run.section("projection", lambda: projection(run.result))
    _print_table(run.result)


class Run:
    """The JSON being written, the clock, and the device's memory counters."""

    def __init__(self, args: argparse.Namespace, device: torch.device, sizes: Sizes) -> None:
        self.args, self.device, self.sizes = args, device, sizes
        self.start = time.perf_counter()
        peak = args.peak_tflops or _peak_tflops(device)
        self.result: dict = {
            "machine": describe(device),
            "device": str(device),
            "mode": "tiny"
            if args.tiny
            else "paper-one-step"
            if args.paper_size_one_step
            else "paper",
            "peak_tflops": peak or None,
            "budget_s": args.budget_s if math.isfinite(args.budget_s) else None,
            "skipped": {},
            "errors": {},
        }

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def section(self, name: str, fn: Callable[[], object]) -> None:
        """Run one section into the JSON; past the budget it is skipped, an error is recorded."""
        if self.args.only and name not in self.args.only:
            self.result["skipped"][name] = "not asked for (--only)"
        elif self.elapsed() > self.args.budget_s:
            self.result["skipped"][name] = f"time budget {self.args.budget_s:.0f} s spent"
        else:
            begun = time.perf_counter()
            try:
                self.result[name] = fn()
            except Exception as error:  # noqa: BLE001 - one failing section must not lose the rest
                if self.args.tiny:
                    raise
                self.result["errors"][name] = f"{type(error).__name__}: {error}"[:500]
            self.result.setdefault("section_seconds", {})[name] = round(
                time.perf_counter() - begun, 1
            )
        self.result["seconds"] = round(self.elapsed(), 1)
        self.args.out.parent.mkdir(parents=True, exist_ok=True)
        self.args.out.write_text(json.dumps(self.result, indent=1) + "\n")
        print(f"[{self.elapsed():6.1f} s] {name}: done", flush=True)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)

    def timed(self, fn: Callable[[], object], reps: int, warmup: int) -> float:
        """Seconds per call of ``fn`` after ``warmup`` calls (peak memory reset before them)."""
        self.reset_memory()
        for _ in range(warmup):
            fn()
        self.sync()
        begun = time.perf_counter()
        for _ in range(reps):
            fn()
        self.sync()
        return (time.perf_counter() - begun) / reps


def _peak_tflops(device: torch.device) -> float:
    if device.type != "cuda":
        return 0.0
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BY_NAME if key in name), 0.0)


def train_rows(
    run: Run, config: ExperimentConfig, teacher: CLIPTeacher, compiled: bool
) -> list[dict]:
    """Training-step rows: the largest micro-batch that fits, and the paper's per-GPU share."""
    sizes, device = run.sizes, run.device
    torch._dynamo.reset()
    torch.manual_seed(0)
    student = build_zeroseg(config.encoder, config.seg_head, config.decoder).to(device)
    optimizer = build_optimizer(student, 1e-4, 0.05, (0.9, 0.95))
    task = DistillationTask(student, teacher, config.loss, config.encoder.mask_ratio)
    task.train()
    if compiled:
        task.student.compile()
    fused, attentions = fused_attention_count(student)
    flops = run.result.get("flops", {}).get("student_step")
    if "largest_micro_batch" not in run.result:  # searched eagerly (compiled: one graph per size)
        search = sizes.search and not compiled
        largest = _largest_micro_batch(run, task, optimizer, config) if search else None
        run.result["largest_micro_batch"] = largest or sizes.micro_batches[0]
    micro = run.result["largest_micro_batch"]
    first = "largest micro-batch" if sizes.search else "micro-batch (not searched)"
    share = f"per-GPU share of 4096 on {run.args.gpus} GPUs"
    if sizes.share != 4096 // run.args.gpus:
        share = f"accumulated step (stands for the {share})"
    rows = []
    for label, micro_batch, images_per_step in (
        (first, micro, micro),
        (share, sizes.share_micro, sizes.share),
    ):
        accumulation = images_per_step // micro_batch
        step = _train_step_fn(task, optimizer, config, device, micro_batch, accumulation)
        seconds = run.timed(step, sizes.reps, sizes.warmup + (1 if compiled else 0))
        rate = images_per_step / seconds
        rows.append({
            "row": label, "paper_share": label == share, "compile": compiled, "micro_batch": micro_batch,
            "accumulation": accumulation, "images_per_s": _sig(rate),
            "seconds_per_step": round(seconds, 4), "peak_memory_gib": run.peak_gib(),
            "mfu": _mfu(rate, flops, run.result["peak_tflops"]),
            "fused_attention": f"{fused}/{attentions}",
            "precision": "bf16" if device.type == "cuda" else "fp32",
        })  # fmt: skip
    del task, student, optimizer
    run.reset_memory()
    return rows


def _train_step_fn(task, optimizer, config, device, micro_batch: int, accumulation: int):
    size = config.encoder.image_size
    images = torch.rand(micro_batch, 3, size, size, device=device)
    views = torch.randn(micro_batch, sum(g * g for g in config.teacher.grids),
                        config.seg_head.out_dim, device=device)  # fmt: skip
    batches = itertools.repeat((images, views))
    return lambda: train_step(task, batches, optimizer, accumulation, device, config)


def _largest_micro_batch(run: Run, task, optimizer, config) -> int | None:
    """The largest of ``sizes.micro_batches`` whose step runs without running out of memory."""
    fits = None
    for micro in run.sizes.micro_batches:
        try:
            _train_step_fn(task, optimizer, config, run.device, micro, 1)()
            fits = micro
        except torch.cuda.OutOfMemoryError:
            optimizer.zero_grad(set_to_none=True)
            break
        finally:
            run.reset_memory()
    return fits


def _sig(value: float) -> float:
    """Three significant figures (CPU rates are small, GPU rates large)."""
    return float(f"{value:.3g}")


def _mfu(images_per_s: float, flops: float | None, peak_tflops: float | None) -> float | None:
    if not flops or not peak_tflops:
        return None
    return round(images_per_s * flops / (peak_tflops * 1e12), 4)


def teacher_cache(run: Run, teacher: CLIPTeacher) -> dict:
    """Images/s of the teacher over 30 views per image (bf16 autocast on CUDA), best batch."""
    sizes, device = run.sizes, run.device
    rows = []
    for batch in sizes.cache_batches:
        images = torch.rand(batch, 3, 224, 224, device=device)

        def encode(images=images):
            with (
                torch.no_grad(),
                torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"),
            ):
                return teacher.encode_views(images)

        seconds = run.timed(encode, sizes.reps, sizes.warmup)
        rows.append({"images_per_forward": batch, "views": teacher.num_views,
                     "images_per_s": _sig(batch / seconds), "peak_memory_gib": run.peak_gib()})  # fmt: skip
    best = max(rows, key=lambda row: row["images_per_s"])
    return {
        "rows": rows,
        "best_images_per_s": best["images_per_s"],
        "imagenet_hours": round(IMAGENET_TRAIN / best["images_per_s"] / 3600, 2),
        "precision": "bf16" if device.type == "cuda" else "fp32",
    }


def inference_rows(run: Run, config: ExperimentConfig, teacher: CLIPTeacher) -> list[dict]:
    """Batch-1 images/s and peak memory of the student and the readouts, at two geometries."""
    sizes, device = run.sizes, run.device
    geometries = {
        f"voc slide {sizes.short_side}/{sizes.window}/{sizes.stride}": (
            InferenceConfig(
                short_side=sizes.short_side,
                resize="mmcv",
                mode="slide",
                window=sizes.window,
                stride=sizes.stride,
                templates="simple1",
            ),
            torch.rand(3, *sizes.image),
        ),  # fmt: skip
        f"whole {sizes.small}x{sizes.small}": (
            InferenceConfig(short_side=sizes.small, mode="whole", templates="simple1"),
            torch.rand(3, sizes.small, sizes.small),
        ),
    }
    home = next(teacher.parameters()).device  # the training rows keep it on the CPU
    teacher.to(device)
    try:
        return _inference_rows(run, config, teacher, geometries)
    finally:
        teacher.to(home)


def _inference_rows(
    run: Run, config: ExperimentConfig, teacher: CLIPTeacher, geometries: dict
) -> list[dict]:
    sizes, device = run.sizes, run.device
    student = build_zeroseg(config.encoder, config.seg_head, None).to(device).eval()
    teachers = {name: _readout_teacher(name, run, config, teacher) for name in sizes.teachers}
    rows = []
    for geometry, (inference, image) in geometries.items():
        makers: dict[str, Callable[[], WindowSegmenter]] = {
            f"zeroseg ({config.teacher.model}) {precision}": _student_maker(
                student, teacher, replace(inference, precision=precision)
            )
            for precision in STUDENT_PRECISIONS
        }
        for name in sizes.teachers:
            for readout in READOUTS:
                makers[f"{readout} {name}"] = lambda r=readout, t=teachers[name], i=inference: (
                    DenseCLIPSegmenter(t, i, readout=r)
                )
        for method, make in makers.items():
            if run.elapsed() > run.args.budget_s:
                run.result["skipped"][f"inference {method} {geometry}"] = "time budget spent"
                continue
            segmenter = make()
            segmenter.set_vocabulary([f"class {k}" for k in range(20)], background=True)
            with torch.no_grad():
                seconds = run.timed(
                    lambda s=segmenter, x=image: s.predict(x),
                    sizes.inference_reps,
                    sizes.inference_warmup,
                )
            rows.append({"method": method, "geometry": geometry, "batch": 1,
                         "precision": _ran_at(segmenter.config.precision, device),
                         "images_per_s": _sig(1 / seconds), "peak_memory_gib": run.peak_gib()})  # fmt: skip
            del segmenter
    return rows


def _student_maker(
    student: ZeroSeg, teacher: CLIPTeacher, inference: InferenceConfig
) -> Callable[[], WindowSegmenter]:
    """Builds the student's ``Segmenter`` at ``inference`` when called."""
    return lambda: Segmenter(student, teacher, inference)


def _ran_at(precision: Precision, device: torch.device) -> str:
    """The precision a segmenter's forward ran at: fp32 where ``precision`` needs CUDA."""
    return "fp32" if autocast_dtype(precision, device) is None else precision


def _readout_teacher(name: str, run: Run, config: ExperimentConfig, preset_teacher: CLIPTeacher):
    """A random-weight teacher for the readouts, built once: the preset's own when it is ``name``
    (or ``tiny``), else as ``--method`` builds it (``build_method``)."""
    if name == "tiny" or name == config.teacher.model:
        return preset_teacher
    method = build_method("maskclip", InferenceConfig(), run.device, teacher_model=name,
                          teacher_pretrained="none")  # fmt: skip
    return method.segmenter.teacher


def projection(result: dict, epochs: int = 80) -> dict:
    """GPU-hours of the paper's run from the measured rates (best training row, best cache)."""
    rows = result.get("train", []) + result.get("train_compiled", [])
    train = [row for row in rows if row["paper_share"]]
    cache = result.get("teacher_cache", {}).get("best_images_per_s")
    if not train or not cache:
        return {"note": "needs the train and teacher_cache sections"}
    best = max(train, key=lambda row: row["images_per_s"])
    train_hours = IMAGENET_TRAIN * epochs / best["images_per_s"] / 3600
    cache_hours = IMAGENET_TRAIN / cache / 3600
    return {
        "epochs": epochs, "images": IMAGENET_TRAIN, "from_row": best["row"],
        "compile": best["compile"], "mfu": best["mfu"],
        "train_gpu_hours": round(train_hours, 2), "cache_gpu_hours": round(cache_hours, 2),
        "total_gpu_hours": round(train_hours + cache_hours, 2), "paper_v100_hours": 84,
    }  # fmt: skip


def _print_table(result: dict) -> None:
    print(f"\n{result['machine']} ({result['mode']}), {result.get('seconds')} s")
    flops = result.get("flops", {})
    if flops:
        print(", ".join(f"{k} {v / 1e9:.2f} GFLOP/image" for k, v in flops.items()))
    print("\n| training step | compile | micro x accum | images/s | peak GiB | MFU |")
    print("|---|---|---|---|---|---|")
    for row in result.get("train", []) + result.get("train_compiled", []):
        mfu = f"{100 * row['mfu']:.1f} %" if row["mfu"] is not None else "-"
        print(f"| {row['row']} | {row['compile']} | {row['micro_batch']} x {row['accumulation']} | "
              f"{row['images_per_s']} | {row['peak_memory_gib']} | {mfu} |")  # fmt: skip
    cache = result.get("teacher_cache")
    if cache:
        print(f"\nteacher cache ({cache['precision']}): {cache['best_images_per_s']} images/s "
              f"(30 views each), ImageNet-1k in {cache['imagenet_hours']} h")  # fmt: skip
    print("\n| inference (batch 1) | geometry | precision | images/s | peak GiB |")
    print("|---|---|---|---|---|")
    for row in result.get("inference", []):
        print(f"| {row['method']} | {row['geometry']} | {row['precision']} | "
              f"{row['images_per_s']} | {row['peak_memory_gib']} |")  # fmt: skip
    proj = result.get("projection", {})
    if "total_gpu_hours" in proj:
        print(f"\n80 epochs: train {proj['train_gpu_hours']} + cache {proj['cache_gpu_hours']} = "
              f"{proj['total_gpu_hours']} device-hours on this device (paper: 84 V100-hours)")  # fmt: skip
    for key in ("skipped", "errors"):
        if result.get(key):
            print(f"{key}: {json.dumps(result[key])}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights: nothing to download
    main()
