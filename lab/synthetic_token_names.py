"""Why the student names no object: do its segments isolate objects, and what do their tokens say?

For students trained by ``lab/synthetic_proof.py`` in one world, over validation scenes
(segments taken by arg-max as at inference):

- segments per image, and how pure an object's main segment is (share of its pixels that are it);
- for each segment whose pixels are at least half one object class: the rank (0 = first of 13) of
  that class in the student's token scores, and in the scores of the teacher's own dense readout
  averaged over the same segment (what a token could say if it carried the teacher's region view);
- with ``--probe``: whether the object's identity is in those segments' tokens at all. A linear
  probe (multinomial logistic regression, features standardised) is fitted on the object class of
  half of the scenes' object segments and scored on the other half, both ways (2-fold, by scene),
  on the student encoder's patch features averaged over the segment, on the segment tokens before
  the projector, on the segment embeddings g, and on the teacher's region readout; beside them the
  share of the commonest class (what a constant guess gets);
- per grouping stage, the mean norm of the group tokens and of the content pooled from the tokens
  assigned to them (a segment token is the sum of the two, GroupViT's residual): which of the two a
  segment token is mostly made of.

    python lab/synthetic_token_names.py --world runs/proof_dense/world0 --runs zeroseg zeroseg_dense
    python lab/synthetic_token_names.py --world runs/proof/world0 --runs zeroseg --images 200 --probe
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zeroseg.benchmark.datasets import VOCSegmentation
from zeroseg.inference.segmenter import InferenceConfig, Segmenter
from zeroseg.runtime.machine import describe
from zeroseg.synthetic.scenes import NUM_STUFF


def rank(scores: torch.Tensor, index: int) -> int:
    return int((scores > scores[index]).sum())


class StageNorms:
    """Forward hooks on each grouping stage's assignment: mean norms of group tokens and pooled content."""

    def __init__(self, head) -> None:
        self.groups: dict[int, list[float]] = {}
        self.pooled: dict[int, list[float]] = {}
        for k, block in enumerate(head.groupings):
            block.assign.register_forward_hook(self.hook(k))

    def hook(self, stage: int):
        def record(module, inputs, output) -> None:
            self.groups.setdefault(stage, []).append(float(inputs[0].norm(dim=-1).mean()))
            self.pooled.setdefault(stage, []).append(float(output[0].norm(dim=-1).mean()))

        return record

    def summary(self) -> str:
        """'group / pooled' mean norms per stage, e.g. '11.8 / 3.2, 11.5 / 4.1'."""
        stages = sorted(self.groups)
        return ", ".join(
            f"{statistics.fmean(self.groups[k]):.1f} / {statistics.fmean(self.pooled[k]):.1f}"
            for k in stages
        )


class SegmentFeatures:
    """A forward hook on the head's final norm: the segment tokens before the projector, (B, S, C)."""

    def __init__(self, head) -> None:
        self.tokens = torch.empty(0)
        head.norm.register_forward_hook(self.record)

    def record(self, module, inputs, output) -> None:
        self.tokens = output.detach()


def measure(run: Path, dataset, images: int, dense_size: int) -> dict:
    names = list(dataset.class_names)
    segmenter = Segmenter.from_checkpoint(run, InferenceConfig(templates="simple1"), device="cpu")
    segmenter.set_vocabulary(names)
    norms = StageNorms(segmenter.model.seg_head)
    features = SegmentFeatures(segmenter.model.seg_head)
    vocab, teacher = segmenter.vocabulary, segmenter.teacher
    teacher.dense_size = dense_size  # the same readout for every student
    segments, purity, student_ranks, teacher_ranks = [], [], [], []
    probe = {"patches": [], "features": [], "embeddings": [], "readout": [], "label": [],
             "scene": []}  # fmt: skip
    for i in range(min(images, len(dataset))):
        image, label, _ = dataset[i]
        with torch.no_grad():
            ids, out = segmenter.segment_map(image[None])
            grid = (image.shape[-2] // 8, image.shape[-1] // 8)
            dense = teacher.encode_dense(image[None], grid)[0]  # (N, D)
            patches = segmenter.model.encoder(image[None], mask_ratio=0.0).patch_tokens[0]
        label = torch.as_tensor(np.asarray(label))
        segments.append(len(ids.unique()))
        for c in label.unique():
            if NUM_STUFF <= c < len(names):
                main = torch.mode(ids[label == c]).values
                purity.append(float((label[ids == main] == c).float().mean()))
        tokens = F.normalize(out.segment_embeddings[0], dim=-1)
        for s in ids.unique():
            inside = ids == s
            values, counts = label[inside].unique(return_counts=True)
            major = int(values[counts.argmax()])
            if not NUM_STUFF <= major < len(names) or counts.max() < 0.5 * inside.sum():
                continue
            student = vocab.class_max(vocab.logits(tokens[s], 100.0).softmax(-1))
            share = F.interpolate(inside[None, None].float(), grid, mode="area")[0, 0].flatten()
            region = F.normalize((share[:, None] * dense).sum(0), dim=-1)
            readout = vocab.class_max(vocab.logits(region, 100.0).softmax(-1))
            student_ranks.append(rank(student, major))
            teacher_ranks.append(rank(readout, major))
            probe["features"].append(features.tokens[0, s])
            probe["embeddings"].append(out.segment_embeddings[0, s])
            probe["readout"].append(region)
            probe["patches"].append((share[:, None] * patches).sum(0) / share.sum())
            probe["label"].append(major)
            probe["scene"].append(i)
    top1 = lambda r: sum(x == 0 for x in r) / max(1, len(r))  # noqa: E731
    return {
        "segments_per_image": statistics.fmean(segments),
        "object_main_segment_purity": statistics.fmean(purity),
        "object_segments": len(student_ranks),
        "student_rank": statistics.fmean(student_ranks) if student_ranks else float("nan"),
        "student_top1": top1(student_ranks),
        "teacher_region_rank": statistics.fmean(teacher_ranks) if teacher_ranks else float("nan"),
        "teacher_region_top1": top1(teacher_ranks),
        "probe": probe,
        "norms": norms.summary(),
    }


def probe_accuracy(features: list[torch.Tensor], labels: list[int], scenes: list[int]) -> float:
    """2-fold (by scene parity) accuracy of a linear probe of the class from the features."""
    x = torch.stack(features).float()
    y = torch.tensor(labels)
    classes = y.unique()
    y = torch.searchsorted(classes, y)
    fold = torch.tensor(scenes) % 2
    torch.manual_seed(0)  # the probe's initial weights: the same figures on every run
    correct = 0
    for held in (0, 1):
        fit, test = fold != held, fold == held
        mean, std = x[fit].mean(0), x[fit].std(0).clamp(min=1e-6)
        layer = torch.nn.Linear(x.shape[1], len(classes))
        optimizer = torch.optim.Adam(layer.parameters(), lr=0.01, weight_decay=1e-3)
        for _ in range(500):
            optimizer.zero_grad()
            F.cross_entropy(layer((x[fit] - mean) / std), y[fit]).backward()
            optimizer.step()
        with torch.no_grad():
            correct += int((layer((x[test] - mean) / std).argmax(1) == y[test]).sum())
    return correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("runs/proof_dense/world0"))
    parser.add_argument("--runs", nargs="+", default=["zeroseg", "zeroseg_dense"])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--dense-size", type=int, default=128, help="teacher readout input (px)")
    parser.add_argument("--probe", action="store_true", help="also fit linear probes (see above)")
    args = parser.parse_args()
    dataset = VOCSegmentation(args.world / "data" / "val", split="val")
    print(f"machine: {describe(torch.device('cpu'))}; {args.world}, {args.images} scenes")
    print(
        "| student | segments / image | object's main segment purity | object segments | "
        "student: rank of the object (top-1) | teacher readout over the segment: rank (top-1) | "
        "norm of group token / pooled content, per stage |"
    )
    print("|---|---|---|---|---|---|---|")  # fmt: skip
    probes = {}
    for name in args.runs:
        m = measure(args.world / "runs" / name, dataset, args.images, args.dense_size)
        print(f"| {name} | {m['segments_per_image']:.2f} | {m['object_main_segment_purity']:.2f} | "
              f"{m['object_segments']} | {m['student_rank']:.2f} ({m['student_top1']:.0%}) | "
              f"{m['teacher_region_rank']:.2f} ({m['teacher_region_top1']:.0%}) | "
              f"{m['norms']} |")  # fmt: skip
        probes[name] = m["probe"]
    if not args.probe:
        return
    print(
        "\n| student | object segments | commonest class | probe: encoder patches over the segment "
        "| probe: tokens before the projector | probe: segment embeddings g | probe: teacher "
        "readout over the segment |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, p in probes.items():
        if len(set(p["label"])) < 2:
            print(f"| {name} | {len(p['label'])} | too few object segments to probe | | | | |")
            continue
        common = max(p["label"].count(c) for c in set(p["label"])) / len(p["label"])
        cells = [probe_accuracy(p[k], p["label"], p["scene"])
                 for k in ("patches", "features", "embeddings", "readout")]  # fmt: skip
        print(
            f"| {name} | {len(p['label'])} | {common:.0%} | "
            + " | ".join(f"{c:.0%}" for c in cells)
            + " |"
        )


if __name__ == "__main__":
    main()
