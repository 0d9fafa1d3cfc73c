"""How well the synthetic world's teacher labels its own views: the ceiling of what segment
matching can hand to the student's segment tokens.

For every validation scene, the caption-trained teacher embeds the 30 views the student is distilled
from (full image, 2x2, 3x3, 4x4 cells); each view is labelled zero-shot over the world's whole
vocabulary ("a photo of a {}."). Printed:

- per grid, the share of cells whose label is the cell's majority ground-truth class, for cells
  where that class is a background ("stuff") and where it is an object;
- for every object and every stuff region of a scene, whether the local view that best overlaps it
  (largest IoU with its ground-truth region) is labelled with its class: what a segment token
  matched by position (``loss.matching=overlap``) would be taught at best;
- how often the full image is labelled with one of the objects it holds.

    python lab/synthetic_teacher_views.py --out runs/teacher_views
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from zeroseg.benchmark.datasets import VOCSegmentation
from zeroseg.models.teacher import build_teacher, grid_boxes
from zeroseg.runtime.machine import describe
from zeroseg.synthetic.caption_clip import load_or_train_caption_clip
from zeroseg.synthetic.demo import DemoConfig, student_config, teacher_cache, write_world
from zeroseg.synthetic.scenes import NUM_STUFF


def view_masks(height: int, width: int, grids: tuple[int, ...]) -> torch.Tensor:
    """(V, H, W) bool region of every view."""
    boxes = grid_boxes(height, width, grids)
    masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
    for k, (y0, y1, x0, x1) in enumerate(boxes):
        masks[k, y0:y1, x0:x1] = True
    return masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/teacher_views")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = DemoConfig(out_dir=Path(args.out), seed=args.seed)
    train_dir, val_dir = write_world(cfg)
    weights = load_or_train_caption_clip(cfg.teacher, teacher_cache(cfg))
    teacher = build_teacher(student_config(cfg, train_dir, weights).teacher).eval()
    dataset = VOCSegmentation(val_dir, split="val")
    names = list(dataset.class_names)
    stuff = NUM_STUFF  # class indices below it are stuff
    text = teacher.build_classifier([[n] for n in names], ["a photo of a {}."])  # (K, D)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.stack([dataset[i][1] for i in range(len(dataset))])  # (B, H, W)
    with torch.no_grad():
        views = F.normalize(teacher.encode_views(images), dim=-1)  # (B, V, D)
    predicted = (views @ text.T).argmax(-1)  # (B, V)
    regions = view_masks(*labels.shape[-2:], teacher.grids)  # (V, H, W)

    majority = torch.stack(
        [
            torch.stack([labels[b][regions[v]].mode().values for v in range(len(regions))])
            for b in range(len(labels))
        ]
    )  # fmt: skip  (B, V)
    print(f"machine: {describe(torch.device('cpu'))}; {len(labels)} validation scenes")
    print("| views | cells | stuff-majority cells right | object-majority cells right |")
    print("|---|---|---|---|")
    start = 0
    for g in teacher.grids:
        cells = slice(start, start + g * g)
        start += g * g
        right = predicted[:, cells] == majority[:, cells]
        is_stuff = majority[:, cells] < stuff
        print(f"| {g}x{g} | {right.numel()} | {right[is_stuff].float().mean():.3f} "
              f"({int(is_stuff.sum())}) | {right[~is_stuff].float().mean():.3f} "
              f"({int((~is_stuff).sum())}) |")  # fmt: skip

    best = {"stuff": [0, 0], "object": [0, 0]}
    full_names_an_object = 0
    for b in range(len(labels)):
        present = labels[b].unique().tolist()
        for c in present:
            region = labels[b] == c
            inter = (regions[1:] & region).flatten(1).sum(1).float()
            union = (regions[1:] | region).flatten(1).sum(1).float()
            view = 1 + int((inter / union).argmax())
            kind = "stuff" if c < stuff else "object"
            best[kind][0] += 1
            best[kind][1] += int(predicted[b, view] == c)
        full_names_an_object += int(predicted[b, 0].item() in [c for c in present if c >= stuff])
    for kind, (count, right) in best.items():
        print(f"best-overlapping local view labels the {kind} right: {right / count:.3f} ({count})")
    print(f"full image labelled with one of its objects: {full_names_an_object / len(labels):.3f}")


if __name__ == "__main__":
    main()
