"""Summaries of the lab's ablations in the synthetic world: object mIoU, spread over worlds, and
whether one world's figures follow the paper's Table 4 and Table 3 orders.

The lab's scripts (``lab/synthetic_ablations.py``, ``lab/synthetic_proof.py``) train and score the
variants; this module only reads their figures.
"""

from __future__ import annotations

import statistics

from zeroseg.synthetic.scenes import NUM_STUFF

# Table 4: Base = z to the full image only; + multi-scale; + segment matching; full.
TABLE4 = ("base", "base+multiscale", "base+matching", "full")
# Table 3: each grid with 1x1 (``full`` is all grids together).
TABLE3_PAIRS = ("grid1x1+2x2", "grid1x1+3x3", "grid1x1+4x4")


def object_miou(per_class: dict[str, float], class_names: list[str]) -> float:
    """Mean IoU (percent) over the object classes (skipping classes absent from both sides)."""
    values = [per_class[c] for c in class_names[NUM_STUFF:] if per_class[c] == per_class[c]]
    return sum(values) / len(values) if values else float("nan")


def spread(values: list[float]) -> str:
    """'mean ± sd' of figures over worlds (sd 0 for one world)."""
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {sd:.2f}"


def paper_orders(world: dict, key: str = "miou") -> dict[str, bool | None]:
    """Whether one world's mIoUs follow the paper's Table 4 and Table 3 orders (None: not run).

    Table 4: Base < + multi-scale < + matching < full. Table 3: every grid with 1x1 beats 1x1 alone,
    and all grids together (``full``) beat every single-grid variant.

    Args:
        world: variant name -> its results (a dict with ``key`` in percent when it was run).
        key: which figure to order (``miou``; ``composed_miou`` for the composed readout).
    """
    miou = {name: r[key] for name, r in world.items() if key in r}
    orders: dict[str, bool | None] = {
        "table4": None, "table3_each_beats_1x1": None, "table3_all_best": None,
    }  # fmt: skip
    if all(n in miou for n in TABLE4):
        orders["table4"] = all(miou[a] < miou[b] for a, b in zip(TABLE4, TABLE4[1:]))
    if all(n in miou for n in ("grid1x1", *TABLE3_PAIRS)):
        orders["table3_each_beats_1x1"] = all(miou[n] > miou["grid1x1"] for n in TABLE3_PAIRS)
        if "full" in miou:
            orders["table3_all_best"] = all(miou["full"] > miou[n] for n in TABLE3_PAIRS)
    return orders
