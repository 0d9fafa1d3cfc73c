"""Ablations in the synthetic world: the paper's Table 4 (losses), Table 3 (grids), and an upper bound.

Every variant trains the demo's student from the same cached teacher, scenes and seed, and is scored
on the same validation scenes (mIoU in percent; oracle mIoU = grouping ceiling; segments used per
image). The upper bound is the same student trained with ground-truth masks
(``zeroseg.synthetic.upper_bound``).

    python lab/synthetic_ablations.py --out runs/ablations --steps 400
    python lab/synthetic_ablations.py --only full base   # a subset
    python lab/synthetic_ablations.py --seeds 0 1 2   # three worlds, mean ± sd, orders
    python lab/synthetic_ablations.py --seeds 1 --only full --baselines   # another world
    python lab/synthetic_ablations.py --extra seg_head.gumbel=false   # on every variant
    python lab/synthetic_ablations.py --seeds 0 1 2 --rescore   # score finished runs again
    # the paper's losses instead of the synthetic preset's (no grouping term, nearest matching):
    python lab/synthetic_ablations.py --extra loss.grouping_information_weight=0 \
        loss.matching=nearest
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from zeroseg.benchmark.datasets import VOCSegmentation
from zeroseg.inference.segmenter import InferenceConfig, Segmenter
from zeroseg.models.teacher import build_teacher
from zeroseg.runtime.atomic import atomic_write_text
from zeroseg.runtime.machine import describe
from zeroseg.synthetic import writers
from zeroseg.synthetic.ablations import object_miou, paper_orders, spread
from zeroseg.synthetic.caption_clip import load_or_train_caption_clip
from zeroseg.synthetic.demo import (
    DemoConfig,
    student_config,
    teacher_baselines,
    teacher_cache,
    write_world,
)
from zeroseg.synthetic.evaluate import evaluate_methods
from zeroseg.synthetic.upper_bound import train_upper_bound
from zeroseg.training.loop import train

VARIANTS = {
    # Table 4: Base = z to the full image only; + multi-scale; + segment matching; full.
    "base": ["loss.distillation_views=full", "loss.matching_weight=0"],
    "base+multiscale": ["loss.matching_weight=0"],
    "base+matching": ["loss.distillation_views=full"],
    "full": [],
    # Table 3: grids (segment matching on wherever there are local views).
    # no local views: a dense ranking term ranks against the image's patches instead
    "grid1x1": ["teacher.grids=[1]", "loss.dense_rank_vocabulary=patches"],
    "grid1x1+2x2": ["teacher.grids=[1,2]"],
    "grid1x1+3x3": ["teacher.grids=[1,3]"],
    "grid1x1+4x4": ["teacher.grids=[1,4]"],
}


SCORE_KEYS = ("miou", "pixel_accuracy", "oracle_miou", "segments_used_per_image", "segment_purity")


def score(run: Path, dataset) -> dict:
    """The paper's readout (each pixel its segment's class: ``miou``, ``object_miou``, ...) and
    the composed one (``composed_miou``, ``composed_object_miou``; the demo's default)."""
    names = list(dataset.class_names)
    inference = InferenceConfig(short_side=0, mode="whole", templates="simple1")
    student = Segmenter.from_checkpoint(run, inference, device="cpu")
    student.set_vocabulary(names)
    scores: dict = {}
    for readout, prefix in (("segments", ""), ("composed", "composed_")):
        segmenter = student.with_config(pixel_readout=readout)  # one checkpoint read, one text pass
        metrics, _ = evaluate_methods({"zeroseg": segmenter}, dataset, names, False)
        found = metrics["zeroseg"]
        keep = ("miou", "pixel_accuracy") if prefix else SCORE_KEYS
        scores |= {f"{prefix}{k}": found[k] for k in keep}
        scores[f"{prefix}object_miou"] = round(object_miou(found["per_class_iou"], names), 2)
    return scores


def score_baselines(config, dataset) -> dict:
    """mIoU and pixel accuracy of the teacher-only baselines in this world."""
    teacher = build_teacher(config.teacher).eval()
    methods = teacher_baselines(teacher, config.encoder.image_size)
    for method in methods.values():
        method.set_vocabulary(list(dataset.class_names))
    metrics, _ = evaluate_methods(methods, dataset, dataset.class_names, False)
    return {
        k: {"miou": v["miou"], "pixel_accuracy": v["pixel_accuracy"]} for k, v in metrics.items()
    }


def run_world(seed: int, args, results: dict, save) -> None:
    """Train and score every requested variant of world ``seed`` into ``results`` (which holds the
    finished ones, skipped), calling ``save`` after each."""
    out = args.out / f"world{seed}"
    cfg = DemoConfig(out_dir=out, seed=seed, steps=args.steps)
    train_dir, val_dir = write_world(cfg)
    teacher = load_or_train_caption_clip(cfg.teacher, teacher_cache(cfg))
    dataset = VOCSegmentation(val_dir, split="val")
    for name in args.only or [*VARIANTS, "upper_bound"]:
        if name in results and args.rescore and name != "upper_bound":
            results[name] |= score(out / "runs" / name, dataset)  # the same run, scored again
            save()
            continue
        if name in results:
            continue
        start = time.time()
        run = out / "runs" / name
        if name == "upper_bound":
            labelled = out / "data" / "train_labelled"
            if not (labelled / "ImageSets").is_dir():
                writers.write_validation_tree(labelled, cfg.train_images, seed, cfg.image_size)
            config = student_config(cfg, train_dir, teacher)
            train_upper_bound(config, labelled, run, progress=False)
        else:
            grids = [o.split("=", 1)[1] for o in VARIANTS[name] if o.startswith("teacher.grids=")]
            tag = "".join(c for c in (grids or ["1234"])[0] if c.isdigit())
            views = out / f"views_{tag}"
            overrides = (*VARIANTS[name], *args.extra, f"data.teacher_cache={views}")
            variant = dataclasses.replace(cfg, student_overrides=overrides)
            train(student_config(variant, train_dir, teacher), run, progress=False)
        results[name] = {**score(run, dataset), "seconds": round(time.time() - start, 1)}
        print(f"world {seed}", name, json.dumps(results[name]), flush=True)
        save()
    if args.baselines and "teacher_baselines" not in results:
        results["teacher_baselines"] = score_baselines(
            student_config(cfg, train_dir, teacher), dataset
        )
        save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ablations"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="worlds")
    parser.add_argument("--only", nargs="*", help="variant names (and/or 'upper_bound')")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every variant")
    parser.add_argument(
        "--baselines", action="store_true", help="also score the teacher-only baselines"
    )
    parser.add_argument(
        "--rescore", action="store_true", help="score finished runs again (both readouts)"
    )
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    results_file = args.out / "ablations.json"
    saved = json.loads(results_file.read_text()) if results_file.is_file() else {}
    held = saved.get("settings", {})
    if saved and (held.get("extra"), held.get("steps")) != (args.extra, args.steps):
        raise SystemExit(
            f"{results_file} holds runs with other --extra or --steps; use another --out"
        )
    worlds: dict = saved.get("worlds", {})

    def save() -> None:
        settings = {
            "steps": args.steps,
            "extra": args.extra,
            "machine": describe(torch.device("cpu")),
        }
        summary = {"settings": settings, "worlds": worlds}
        summary["orders"] = {seed: paper_orders(world) for seed, world in worlds.items()}
        summary["orders_composed"] = {
            seed: paper_orders(world, "composed_miou") for seed, world in worlds.items()
        }
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(results_file, json.dumps(summary, indent=2))

    for seed in args.seeds:
        run_world(seed, args, worlds.setdefault(str(seed), {}), save)
    print(f"machine: {describe(torch.device('cpu'))}")
    print(f"steps {args.steps}, worlds {args.seeds}, extra {args.extra}")
    keys = (
        "miou", "object_miou", "composed_miou", "composed_object_miou", "pixel_accuracy",
        "oracle_miou", "segments_used_per_image",
    )  # fmt: skip
    print("| variant | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    names = [n for n in worlds[str(args.seeds[0])] if n != "teacher_baselines"]
    for name in names:
        rows = [worlds[str(s)][name] for s in args.seeds if name in worlds[str(s)]]
        cells = [spread([r[k] for r in rows]) if k in rows[0] else "-" for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for seed in args.seeds:
        for key in ("miou", "composed_miou"):
            orders = paper_orders(worlds[str(seed)], key)
            print(f"world {seed} paper orders by {key}: {json.dumps(orders)}")


if __name__ == "__main__":
    main()
