"""fact_reliability: failures, MTBF/MTTR and the Weibull fit against what the engine injected."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from twin_pipeline.lib.contracts import SILVER_STATE_INTERVALS as INTERVALS
from twin_pipeline.lib.transforms.reliability import failures, fit_weibull

T = datetime(2026, 11, 24, 5, tzinfo=UTC)


def intervals(*runs: tuple[str, float], in_gap: set[int] = frozenset()) -> pl.DataFrame:
    """State intervals from (time element, seconds) runs, cut in two (a shift boundary) where long."""
    rows, t = [], T
    for i, (element, seconds) in enumerate(runs):
        pieces = [seconds / 2, seconds / 2] if seconds > 1000 else [seconds]
        for piece in pieces:
            end = t + timedelta(seconds=piece)
            rows.append(
                {
                    "shift_id": "s",
                    "line_id": "L1",
                    "state": None,
                    "state_name": None,
                    "time_element": element,
                    "start": t,
                    "end": end,
                    "duration_s": piece,
                    "stop_reason": None,
                    "in_gap": i in in_gap,
                    "planned_break": False,
                }
            )
            t = end
    return pl.DataFrame(rows, schema=INTERVALS)


def test_times_to_failure_count_from_the_observed_execute_entry() -> None:
    seen = failures(
        intervals(
            ("production", 500),
            ("fault", 100),
            ("setup", 20),
            ("production", 3000),
            ("stop", 60),
            ("production", 940),
            ("fault", 200),
            ("setup", 10),
            ("production", 700),
        )
    )
    # the first uptime's start is not observed (the line was already running): no time to failure from it
    assert seen.times_to_failure_s == [4000.0]  # Execute entry -> fault, the stop inside counts
    assert seen.repair_s == [100.0, 200.0]
    assert seen.censored_s == [700.0]  # still running at the end of the observation


def test_a_gap_breaks_the_chain() -> None:
    seen = failures(intervals(("setup", 10), ("production", 2000), ("production", 300), ("fault", 50), in_gap={2}))
    assert seen.times_to_failure_s == [] and seen.repair_s == [50.0] and seen.censored_s == []


def test_censored_weibull_fit_recovers_the_parameters() -> None:
    rng = np.random.default_rng(7)
    draws = 14_400.0 * rng.weibull(1.5, size=400)
    end = 20_000.0  # observation ends: longer uptimes are censored there
    fit = fit_weibull([d for d in draws if d <= end], [end for d in draws if d > end])
    assert fit.censored > 50
    assert fit.shape == pytest.approx(1.5, rel=0.12) and fit.scale == pytest.approx(14_400.0, rel=0.1)
    assert fit_weibull([100.0, 200.0], []).shape is None  # too few failures: no fit
    constant = fit_weibull([5400.0] * 4, [100.0])  # no spread: no finite shape, the scale is the value
    assert (constant.shape, constant.scale, constant.failures, constant.censored) == (None, 5400.0, 4, 1)


def test_gold_reliability_matches_the_injected_faults(engine_shift: tuple[Path, dict], tmp_path: Path) -> None:
    from twin_pipeline.defs.bronze.assets import bronze_samples_asset
    from twin_pipeline.defs.gold.assets import gold_fact_reliability
    from twin_pipeline.defs.silver.assets import silver_state_intervals
    from twin_pipeline.resources.lake import LakeResource

    lake = tmp_path / "lake"
    shutil.copytree(engine_shift[0], lake)
    result = dg.materialize(
        [bronze_samples_asset, silver_state_intervals, gold_fact_reliability],
        partition_key="2026-11-24-0600",
        resources={"lake": LakeResource(root=str(lake))},
    )
    assert result.success
    rows = {r["line_id"]: r for r in pl.read_delta(str(lake / "gold" / "fact_reliability")).iter_rows(named=True)}
    l1, l2 = rows["L1"], rows["L2"]
    injected = pl.read_delta(str(lake / "edge" / "injected_events")).filter(pl.col("kind") == "fault_start")
    assert l1["failures"] == l1["injected_faults"] == injected.height >= 4
    assert l1["injected_ttf_distribution"] == "constant" and l1["injected_ttf_params"] == '{"value": 5400.0}'
    # every observed time to failure is the constant draw, give or take the fixture's 60 s clock steps: the
    # fit sees a near-deterministic life (a huge shape) at the drawn value
    assert l1["fit_failures"] >= 3 and l1["weibull_shape"] > 100
    assert l1["weibull_scale"] == pytest.approx(5400.0, abs=60.0)
    # MTTR: the 600 s repair plus the Clearing state after the Clear command (3 s)
    assert l1["mttr_s"] == pytest.approx(603.0, abs=2.0)
    assert l1["injected_mean_repair_s"] == 600.0
    assert l1["mtbf_s"] == pytest.approx(l1["production_time_s"] / l1["failures"])
    assert l2["failures"] == 0 and l2["mtbf_s"] is None and l2["injected_ttf_distribution"] is None
