"""What segment matching hands the student: which views its segment tokens are matched to.

For a trained synthetic-world student (a run directory) and 64 training scenes (seed 0 stream):
the share of local views that are object-majority / that the teacher names as an object, the share
of the views the tokens are matched to (one masked training forward) that are, and how far apart
the teacher puts object and stuff views (mean cosine). Overrides change the matching rule, e.g.
``loss.matching=overlap``, for the same student.

    python lab/synthetic_matching.py runs/proof/world0/runs/zeroseg
    python lab/synthetic_matching.py runs/proof/world0/runs/zeroseg loss.matching=overlap
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from zeroseg.config import ExperimentConfig, resolve_config
from zeroseg.inference.text_queries import TextQueries
from zeroseg.models.teacher import build_teacher, grid_boxes
from zeroseg.runtime.machine import describe
from zeroseg.synthetic.scenes import CLASS_NAMES, NUM_STUFF, generate_scene
from zeroseg.training.checkpoint import load_experiment_config, load_student
from zeroseg.training.task import DistillationTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a synthetic-world student's run directory")
    parser.add_argument("overrides", nargs="*", help="loss overrides, e.g. loss.matching=overlap")
    parser.add_argument("--scenes", type=int, default=64)
    args = parser.parse_args()
    config = resolve_config(
        ExperimentConfig, overrides=args.overrides, base=load_experiment_config(args.run)
    )
    model, _, _ = load_student(args.run, with_decoder=True)
    teacher = build_teacher(config.teacher)
    scenes = [generate_scene(0, i, config.encoder.image_size) for i in range(args.scenes)]
    images = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1).float() / 255 for s in scenes])
    boxes = grid_boxes(*images.shape[-2:], teacher.grids)
    majority = torch.tensor(
        [
            [int(np.bincount(s.labels[y0:y1, x0:x1].ravel(), minlength=13).argmax())
             for y0, y1, x0, x1 in boxes]
            for s in scenes
        ]
    )  # fmt: skip
    task = DistillationTask(model, teacher, config.loss, config.encoder.mask_ratio).train()
    torch.manual_seed(0)
    with torch.no_grad():
        views = teacher.encode_views(images)
        matched = task(images, views)["matched_views"]  # (B, S) view indices (1.. = local)
    named = TextQueries.build(teacher, list(CLASS_NAMES), "simple1")
    teacher_label = named.probabilities(views, 100.0).argmax(-1)
    local = slice(1, None)
    print(f"machine: {describe(torch.device('cpu'))}")
    print(f"run {args.run}, matching {config.loss.matching}, {args.scenes} scenes")
    print(
        f"local views object-majority {(majority[:, local] >= NUM_STUFF).float().mean():.3f}, "
        f"named as an object by the teacher {(teacher_label[:, local] >= NUM_STUFF).float().mean():.3f}"
    )
    print(
        f"matched views object-majority {(majority.gather(1, matched) >= NUM_STUFF).float().mean():.3f}, "
        f"named as an object {(teacher_label.gather(1, matched) >= NUM_STUFF).float().mean():.3f}"
    )
    unit = F.normalize(views[:, local].reshape(-1, views.shape[-1]), dim=-1)
    is_object = majority[:, local].reshape(-1) >= NUM_STUFF
    print(
        f"mean cosine: object vs stuff views {(unit[is_object] @ unit[~is_object].T).mean():.3f}, "
        f"stuff vs stuff {(unit[~is_object] @ unit[~is_object].T).mean():.3f}, "
        f"object vs object {(unit[is_object] @ unit[is_object].T).mean():.3f}"
    )


if __name__ == "__main__":
    main()
