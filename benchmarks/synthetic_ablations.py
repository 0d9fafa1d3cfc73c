"""Ablations in the synthetic world: the paper's Table 4 (losses), Table 3 (grids), and an upper bound.

Every variant trains the demo's student from the same cached teacher, scenes and seed, and is scored
on the same validation scenes (mIoU in percent; oracle mIoU = grouping ceiling; segments used per
image). The upper bound is the same student trained with ground-truth masks
(``zeroseg.synthetic.upper_bound``).

    python benchmarks/synthetic_ablations.py --out runs/ablations --steps 400
    python benchmarks/synthetic_ablations.py --only full base   # a subset
    python benchmarks/synthetic_ablations.py --seed 1 --only full --baselines   # another world
    python benchmarks/synthetic_ablations.py --extra seg_head.gumbel=false   # on every variant
    # the paper's losses instead of the synthetic preset's (no grouping term, nearest matching):
    python benchmarks/synthetic_ablations.py --extra loss.grouping_information_weight=0 \
        loss.matching=nearest
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from _machine import describe

from zeroseg.data.segmentation import VOCSegmentation
from zeroseg.inference import InferenceConfig, Segmenter
from zeroseg.synthetic import writers
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
from zeroseg.teacher import build_teacher
from zeroseg.training import train

VARIANTS = {
    # Table 4: Base = z to the full image only; + multi-scale; + segment matching; full.
    "base": ["loss.distillation_views=full", "loss.matching_weight=0"],
    "base+multiscale": ["loss.matching_weight=0"],
    "base+matching": ["loss.distillation_views=full"],
    "full": [],
    # Table 3: grids (segment matching on wherever there are local views).
    "grid1x1": ["teacher.grids=[1]"],
    "grid1x1+2x2": ["teacher.grids=[1,2]"],
    "grid1x1+3x3": ["teacher.grids=[1,3]"],
    "grid1x1+4x4": ["teacher.grids=[1,4]"],
}


def score(run: Path, dataset) -> dict:
    inference = InferenceConfig(short_side=0, mode="whole", templates="simple1")
    segmenter = Segmenter.from_checkpoint(run, inference, device="cpu")
    segmenter.set_vocabulary(list(dataset.class_names))
    metrics, _ = evaluate_methods({"zeroseg": segmenter}, dataset, dataset.class_names, False)
    keep = ("miou", "pixel_accuracy", "oracle_miou", "segments_used_per_image", "segment_purity")
    return {k: metrics["zeroseg"][k] for k in keep}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ablations"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="variant names (and/or 'upper_bound')")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every variant")
    parser.add_argument(
        "--baselines", action="store_true", help="also score the teacher-only baselines"
    )
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    cfg = DemoConfig(out_dir=args.out, seed=args.seed, steps=args.steps)
    train_dir, val_dir = write_world(cfg)
    teacher = load_or_train_caption_clip(cfg.teacher, teacher_cache(cfg))
    dataset = VOCSegmentation(val_dir, split="val")
    names = args.only or [*VARIANTS, "upper_bound"]
    results = {}
    for name in names:
        start = time.time()
        run = args.out / "runs" / name
        if name == "upper_bound":
            labelled = args.out / "data" / "train_labelled"
            if not (labelled / "ImageSets").is_dir():
                writers.write_validation_tree(labelled, cfg.train_images, args.seed, cfg.image_size)
            config = student_config(cfg, train_dir, teacher)
            train_upper_bound(config, labelled, run, progress=False)
        else:
            grids = [o.split("=", 1)[1] for o in VARIANTS[name] if o.startswith("teacher.grids=")]
            tag = "".join(c for c in (grids or ["1234"])[0] if c.isdigit())
            views = args.out / f"views_{tag}"
            overrides = (*VARIANTS[name], *args.extra, f"data.teacher_cache={views}")
            variant = dataclasses.replace(cfg, student_overrides=overrides)
            train(student_config(variant, train_dir, teacher), run, progress=False)
        results[name] = {**score(run, dataset), "seconds": round(time.time() - start, 1)}
        print(name, json.dumps(results[name]), flush=True)
    if args.baselines:
        results.update(score_baselines(student_config(cfg, train_dir, teacher), dataset))
    print(f"machine: {describe(torch.device('cpu'))}")
    print(f"steps {args.steps}, seed {args.seed}, extra {args.extra}")
    print("| variant | mIoU | pixel acc. | oracle mIoU | segments/image |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['miou']:.2f} | {r['pixel_accuracy']:.2f} | "
              f"{r.get('oracle_miou', float('nan')):.2f} | "
              f"{r.get('segments_used_per_image', '-')} |")  # fmt: skip
    (args.out / "ablations.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
