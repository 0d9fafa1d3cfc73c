"""The lab's ablations say whether the paper's Table 4 and Table 3 orders hold."""

import pytest

from zeroseg.synthetic.ablations import object_miou, paper_orders, spread


def world(**miou: float) -> dict:
    return {name.replace("_", "+"): {"miou": value} for name, value in miou.items()}


IN_ORDER = dict(base=10, base_multiscale=20, base_matching=30, full=40, grid1x1=10,
                grid1x1_2x2=30, grid1x1_3x3=35, grid1x1_4x4=39)  # fmt: skip


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, (True, True, True)),
        ({"base_matching": 15}, (False, True, True)),  # matching below multi-scale
        ({"grid1x1_3x3": 8}, (True, False, True)),  # a grid below 1x1 alone
        ({"grid1x1_4x4": 41}, (True, True, False)),  # one grid above all grids together
    ],
)
def test_each_order_breaks_only_where_a_step_is_out_of_order(changes, expected):
    orders = paper_orders(world(**{**IN_ORDER, **changes}))
    assert (
        tuple(orders[k] for k in ("table4", "table3_each_beats_1x1", "table3_all_best")) == expected
    )


def test_orders_of_variants_not_run_are_unknown():
    assert paper_orders(world(base=10, full=20)) == {
        "table4": None, "table3_each_beats_1x1": None, "table3_all_best": None,
    }  # fmt: skip
    assert (
        paper_orders({**world(base=10), "teacher_baselines": {"teacher_grid2x2": {}}})["table4"]
        is None
    )


def test_object_miou_skips_stuff_and_absent_classes():
    from zeroseg.synthetic.scenes import CLASS_NAMES, NUM_STUFF

    per_class = {name: 50.0 for name in CLASS_NAMES[:NUM_STUFF]}
    objects = CLASS_NAMES[NUM_STUFF:]
    per_class |= {name: float("nan") for name in objects}
    per_class[objects[0]], per_class[objects[1]] = 10.0, 30.0
    assert object_miou(per_class, list(CLASS_NAMES)) == 20.0
    assert spread([1.0, 3.0]) == "2.00 ± 1.41" and spread([2.0]) == "2.00 ± 0.00"


def test_orders_by_another_figure():
    by_segments = world(**IN_ORDER)
    reversed_composed = {
        name: {**r, "composed_miou": -r["miou"]} for name, r in by_segments.items()
    }
    assert paper_orders(reversed_composed)["table4"] is True
    assert paper_orders(reversed_composed, "composed_miou")["table4"] is False
