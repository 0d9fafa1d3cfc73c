"""Does ZeroSeg work? Three synthetic worlds: the student against every teacher-only baseline.

Per world (seed): the demo's scenes, the shipped caption teacher, the student with the `synthetic`
preset (full method), the same with dense targets (beyond the paper: ``loss.dense_weight``), the
student with the paper's losses (no grouping term, nearest matching),
every teacher-only baseline (grid crops, sliding windows, MaskCLIP-style dense readout), and the
upper bound (the same student trained on ground-truth masks). Each method's inference cost per
validation image: milliseconds on this machine and forwards of the teacher's image tower (crops
or dense passes). Prints a table with mean and spread (standard deviation over worlds) and writes
it as JSON.

    python lab/synthetic_proof.py --out runs/proof              # seeds 0 1 2
    python lab/synthetic_proof.py --seeds 3 4 --steps 400
    python lab/synthetic_proof.py --skip zeroseg_paper_losses upper_bound
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from zeroseg.benchmark.datasets import VOCSegmentation
from zeroseg.runtime.atomic import atomic_write_text
from zeroseg.runtime.machine import describe
from zeroseg.synthetic import writers
from zeroseg.synthetic.ablations import object_miou, spread
from zeroseg.synthetic.caption_clip import load_or_train_caption_clip
from zeroseg.synthetic.demo import (
    DemoConfig,
    build_methods,
    student_config,
    teacher_cache,
    write_world,
)
from zeroseg.synthetic.evaluate import evaluate_methods
from zeroseg.synthetic.upper_bound import train_upper_bound
from zeroseg.training.loop import train

PAPER_LOSSES = (
    "loss.grouping_information_weight=0", "loss.matching=nearest", "loss.dense_weight=0",
    "loss.dense_rank_weight=0", "teacher.dense_size=0",
)  # fmt: skip
# beyond the paper (issue 14): the teacher's MaskCLIP readout at the token grid as dense targets,
# read at 128 px (the resolution of the best dense baseline, teacher_dense128)
DENSE_TARGETS = ("loss.dense_weight=1.0", "teacher.dense_size=128")
VARIANTS = {
    "zeroseg": (),
    "zeroseg_dense": DENSE_TARGETS,  # every patch's composed embedding to its target
    "zeroseg_paper_losses": PAPER_LOSSES,
}


class ForwardCounter:
    """A forward hook counting the images through the teacher's first image-tower layer."""

    def __init__(self) -> None:
        self.images = 0

    def __call__(self, module, inputs, output) -> None:
        self.images += len(inputs[0])


def timed_scores(methods: dict, dataset) -> dict:
    """Per method: mIoU, object mIoU, ms and teacher image-tower forwards per image."""
    names = list(dataset.class_names)
    results = {}
    for name, method in methods.items():
        counter = ForwardCounter()
        hook = method.teacher.clip.visual.conv1.register_forward_hook(counter)
        start = time.perf_counter()
        metrics, _ = evaluate_methods({name: method}, dataset, names, progress=False)
        seconds = time.perf_counter() - start
        hook.remove()
        m = metrics[name]
        results[name] = {
            "miou": m["miou"],
            "object_miou": round(object_miou(m["per_class_iou"], names), 2),
            "pixel_accuracy": m["pixel_accuracy"],
            "ms_per_image": round(1e3 * seconds / len(dataset), 2),
            "teacher_forwards_per_image": round(counter.images / len(dataset), 2),
        }
    return results


def run_world(
    seed: int, out: Path, steps: int, skip: tuple[str, ...] = (), extra: dict | None = None
) -> dict:
    cfg = DemoConfig(out_dir=out / f"world{seed}", seed=seed, steps=steps)
    train_dir, val_dir = write_world(cfg)
    teacher = load_or_train_caption_clip(cfg.teacher, teacher_cache(cfg))
    dataset = VOCSegmentation(val_dir, split="val")
    names = list(dataset.class_names)
    results = {}
    runs = {k: v for k, v in {**VARIANTS, **(extra or {})}.items() if k not in skip}
    for name, overrides in runs.items():
        run = cfg.out_dir / "runs" / name
        if any(o.startswith("loss.dense_weight") for o in overrides):  # its own view cache
            overrides = (*overrides, f"data.teacher_cache={cfg.out_dir / f'views_{name}'}")
        variant = dataclasses.replace(cfg, student_overrides=overrides)
        if not (run / "checkpoints").is_dir():
            train(student_config(variant, train_dir, teacher), run, progress=False)
        methods = build_methods(run, names, cfg.image_size)
        if name != "zeroseg":  # the baselines once, with the full method
            methods = {name: methods["zeroseg"]}
        results.update(timed_scores(methods, dataset))
    if "upper_bound" not in skip:
        results["upper_bound"] = upper_bound(cfg, seed, train_dir, teacher, dataset)
    baselines = {k: v["miou"] for k, v in results.items() if k.startswith("teacher_")}
    best = max(baselines, key=baselines.get)
    results["summary"] = {
        "best_baseline": best,
        "ratio_to_best_baseline": round(results["zeroseg"]["miou"] / baselines[best], 3),
    }
    return results


def upper_bound(cfg: DemoConfig, seed: int, train_dir: Path, teacher: Path, dataset) -> dict:
    """The same student trained on the training scenes' ground-truth masks."""
    labelled = cfg.out_dir / "data" / "train_labelled"
    if not (labelled / "ImageSets").is_dir():
        writers.write_validation_tree(labelled, cfg.train_images, seed, cfg.image_size)
    bound = cfg.out_dir / "runs" / "upper_bound"
    if not (bound / "checkpoints").is_dir():
        train_upper_bound(student_config(cfg, train_dir, teacher), labelled, bound, False)
    upper = build_methods(bound, list(dataset.class_names), cfg.image_size)["zeroseg"]
    return timed_scores({"upper_bound": upper}, dataset)["upper_bound"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/proof"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=DemoConfig().steps)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=[*VARIANTS, "upper_bound"],
        help="rows to leave out (the full method and the baselines always run)",
    )  # fmt: skip
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]",
        help="an extra student row: its name and overrides (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    extra = {}
    for item in args.variant:
        name, _, overrides = item.partition("=")
        extra[name] = tuple(o for o in overrides.split(",") if o)
    if "zeroseg" in args.skip:
        parser.error("the full method is the row every other is compared with")
    worlds = {}
    for seed in args.seeds:
        start = time.time()
        worlds[seed] = run_world(seed, args.out, args.steps, tuple(args.skip), extra)
        print(f"world {seed}: {json.dumps(worlds[seed])} ({time.time() - start:.0f} s)", flush=True)
    methods = [k for k in worlds[args.seeds[0]] if k != "summary"]
    print(f"\nmachine: {describe(torch.device('cpu'))}")
    print(f"worlds (seeds): {args.seeds}; mean ± standard deviation over worlds; mIoU in percent")
    print("| method | mIoU | object mIoU | pixel acc. | ms / image | teacher forwards / image |")
    print("|---|---|---|---|---|---|")
    for name in methods:
        rows = [worlds[s][name] for s in args.seeds]
        cells = [spread([r[k] for r in rows]) for k in ("miou", "object_miou", "pixel_accuracy")]
        cost = rows[0]["teacher_forwards_per_image"]
        ms = spread([r["ms_per_image"] for r in rows])
        print(f"| {name} | {' | '.join(cells)} | {ms} | {cost} |")
    ratios = [worlds[s]["summary"]["ratio_to_best_baseline"] for s in args.seeds]
    best = [worlds[s]["summary"]["best_baseline"] for s in args.seeds]
    print(f"\nstudent / best teacher-only baseline per world: {ratios} ({best}); "
          f"mean {statistics.fmean(ratios):.3f}")  # fmt: skip
    summary = {"seeds": args.seeds, "worlds": worlds, "ratios": ratios,
               "machine": describe(torch.device("cpu"))}  # fmt: skip
    atomic_write_text(args.out / "proof.json", json.dumps(summary, indent=2) + "\n")
    print(f"written: {args.out / 'proof.json'}")


if __name__ == "__main__":
    main()
