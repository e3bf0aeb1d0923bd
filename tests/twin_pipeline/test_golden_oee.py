"""The golden OEE vectors (tests/golden/oee_vectors.json) through the polars definition: bronze rows
-> state intervals -> part counts -> fact_oee_shift row, equal to the hand-computed figures to 1e-9."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tests.support.golden import VECTORS, bronze
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.transforms.counters import part_counts
from twin_pipeline.lib.transforms.oee import oee_rows, roll_up
from twin_pipeline.lib.transforms.states import state_intervals


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_polars_reproduces_the_golden_vector(vector: dict[str, Any]) -> None:
    window = CALENDAR.window(vector["shift_id"])
    samples = bronze(vector)
    intervals = state_intervals(samples, window, [vector["line_id"]], [])
    [row] = oee_rows(intervals, part_counts(samples, window), samples, window).to_dicts()
    for name, expected in vector["expected"].items():
        if expected is None:
            assert row[name] is None, name
        else:
            assert row[name] == pytest.approx(expected, rel=1e-9, abs=1e-9), name


def test_the_vectors_cover_what_the_issue_names() -> None:
    names = {v["name"] for v in VECTORS}
    assert {
        "dst_spring_night",
        "counter_wrap",
        "fault_spanning_the_shift_start",
        "zero_production",
        "product_changeover",
    } <= names


def test_roll_up_is_the_ratio_of_sums_not_the_mean_of_ratios() -> None:
    """Two shifts whose mean of ratios differs from the ratio of sums, and a second cycle time, by hand:
    A: PBT 100 s, APT 50 s, 25 parts at 1 s, all good  -> A 0.5, P 0.5, Q 1.0, OEE 0.25
    B: PBT 300 s, APT 300 s, 100 parts at 2 s, 50 good -> A 1.0, P 2/3, Q 0.5, OEE 1/3
    Pooled: A = 350/400, P = (25 x 1 + 100 x 2)/350 = 225/350, Q = 75/125, OEE = 0.875 x 0.642857 x 0.6
    = 0.3375 (the mean of the OEEs would be 0.2917, of the availabilities 0.75)."""
    rows = pl.DataFrame(
        {
            "planned_busy_time_s": [100.0, 300.0],
            "actual_production_time_s": [50.0, 300.0],
            "ideal_cycle_time_s": [1.0, 2.0],
            "produced": [25, 100],
            "good": [25, 50],
        }
    )
    f = roll_up(rows)
    assert f.availability == pytest.approx(350 / 400)
    assert f.performance == pytest.approx(225 / 350)
    assert f.quality == pytest.approx(75 / 125)
    assert f.oee == pytest.approx(0.3375)
    assert f.oee != pytest.approx((0.25 + 1 / 3) / 2)
    # no rows: no figures, not zeros
    assert roll_up(rows.clear()).oee is None
