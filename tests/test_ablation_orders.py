"""``benchmarks/synthetic_ablations.py`` says whether the paper's Table 4 and Table 3 orders hold."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from synthetic_ablations import paper_orders  # noqa: E402


def world(**miou: float) -> dict:
    return {name.replace("_", "+"): {"miou": value} for name, value in miou.items()}


def test_the_paper_orders_hold_when_each_step_is_better():
    runs = world(base=10, base_multiscale=20, base_matching=30, full=40, grid1x1=10,
                 grid1x1_2x2=30, grid1x1_3x3=35, grid1x1_4x4=39)  # fmt: skip
    assert paper_orders(runs) == {
        "table4": True, "table3_each_beats_1x1": True, "table3_all_best": True,
    }  # fmt: skip


def test_one_step_out_of_order_breaks_only_its_table():
    runs = world(base=10, base_multiscale=30, base_matching=20, full=40, grid1x1=10,
                 grid1x1_2x2=30, grid1x1_3x3=8, grid1x1_4x4=41)  # fmt: skip
    assert paper_orders(runs) == {
        "table4": False, "table3_each_beats_1x1": False, "table3_all_best": False,
    }  # fmt: skip


def test_orders_of_variants_not_run_are_unknown():
    assert paper_orders(world(base=10, full=20)) == {
        "table4": None, "table3_each_beats_1x1": None, "table3_all_best": None,
    }  # fmt: skip
    assert (
        paper_orders({**world(base=10), "teacher_baselines": {"teacher_grid2x2": {}}})["table4"]
        is None
    )
