"""The six big losses (gold `fact_losses`) over a seeded shift with every injection the variability engine
has, and the reconciliation of each injected kind with gold: agreement on the seeded shift, failure when
an injection or a gold row is planted."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import write_deltalake

from edge_collector.variability.engine import VariabilityConfig
from edge_collector.variability.history import seed_history
from tests.conftest import T0
from twin_pipeline.defs.bronze.assets import bronze_samples_asset
from twin_pipeline.defs.gold.assets import gold_fact_quality
from twin_pipeline.defs.gold.checks import fault_downtime_matches_injections
from twin_pipeline.defs.gold.losses import gold_fact_losses, injections_reconcile, losses_add_up
from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.defs.silver.assets import silver_part_counts, silver_part_measurements, silver_state_intervals
from twin_pipeline.lib.transforms.losses import loss_totals_problems
from twin_pipeline.lib.transforms.reconcile import comparisons
from twin_pipeline.resources.lake import LakeResource

SHIFT = "2026-11-24-0600"  # T0 = 06:00 Berlin
ASSETS = [
    bronze_samples_asset,
    silver_state_intervals,
    silver_part_counts,
    silver_part_measurements,
    gold_fact_oee_shift,
    gold_fact_quality,
    gold_fact_losses,
]
CHECKS = [losses_add_up, injections_reconcile, fault_downtime_matches_injections]
#: Every kind at a rate that shows it in one shift.
VARIABILITY = VariabilityConfig.model_validate(
    {
        "default": {
            "faults": {
                "time_to_failure": {"kind": "weibull", "shape": 1.5, "scale": 7200.0},
                "repair_time": {"kind": "lognormal", "median": 400.0, "sigma": 0.5},
            },
            "quality_error": {"interval_s": 900.0, "distribution": {"kind": "normal", "mean": 0.01, "sd": 0.01}},
            "starvation": {
                "interval": {"kind": "exponential", "mtbf": 3600.0},
                "duration": {"kind": "lognormal", "median": 120.0, "sigma": 0.5},
            },
            "blocking": {
                "interval": {"kind": "exponential", "mtbf": 3600.0},
                "duration": {"kind": "lognormal", "median": 60.0, "sigma": 0.5},
            },
            "micro_stops": {
                "interval": {"kind": "exponential", "mtbf": 240.0},
                "duration": {"kind": "lognormal", "median": 4.0, "sigma": 0.5},
            },
            "reduced_speed": {
                "interval": {"kind": "exponential", "mtbf": 3600.0},
                "duration": {"kind": "lognormal", "median": 900.0, "sigma": 0.5},
                "speed_limit": {"kind": "uniform", "low": 60.0, "high": 80.0},
            },
            "startup_rejects": {"count": {"kind": "uniform", "low": 2.0, "high": 8.0}},
        },
        "lines": {
            "L1": {
                "feed_rate": {"interval_s": 600.0, "distribution": {"kind": "uniform", "low": 100.0, "high": 118.0}}
            },
            "L2": {"feed_rate": {"interval_s": 600.0, "distribution": {"kind": "uniform", "low": 75.0, "high": 88.0}}},
        },
    }
)
KINDS = {
    "fault_start",
    "fault_end",
    "quality_shift",
    "feed_rate",
    "starvation_start",
    "starvation_end",
    "blocking_start",
    "blocking_end",
    "micro_stop_start",
    "micro_stop_end",
    "reduced_speed_start",
    "reduced_speed_end",
    "startup_rejects",
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One shift of L1 and L2 seeded with every injection, gold computed once (checks not run)."""
    lake = tmp_path_factory.mktemp("losses") / "lake"
    seed_history(lake, ["L1", "L2"], T0, T0 + timedelta(hours=8), seed=7, variability=VARIABILITY, variability_seed=5)
    assert dg.materialize(ASSETS, partition_key=SHIFT, resources={"lake": LakeResource(root=str(lake))}).success
    return lake


@pytest.fixture
def lake(seeded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(seeded, copy)
    return copy


def _read(lake: Path, table: str) -> pl.DataFrame:
    return pl.read_delta(str(lake / table))


def _checks(lake: Path) -> dict[str, dg.AssetCheckEvaluation]:
    result = dg.materialize(
        [*ASSETS, *CHECKS], partition_key=SHIFT, resources={"lake": LakeResource(root=str(lake))}, raise_on_error=False
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_every_injection_reconciles_with_gold_and_the_six_losses_add_up(lake: Path) -> None:
    injected = _read(lake, "edge/injected_events")
    assert set(injected["kind"].unique().to_list()) == KINDS
    evaluations = _checks(lake)
    for name in ("losses_add_up", "injections_reconcile", "fault_downtime_matches_injections"):
        assert evaluations[name].passed, (name, {k: v.value for k, v in evaluations[name].metadata.items()})
    compared = evaluations["injections_reconcile"].metadata
    for what in (
        "starved downtime s",
        "blocked downtime s",
        "fault downtime s",
        "small stops",
        "performance loss s",
        "mean deviation mm",
        "startup rejects",
    ):
        assert f"{SHIFT} L1 {what}" in compared, what
    losses = _read(lake, "gold/fact_losses")
    l1 = losses.filter(pl.col("line_id") == "L1")
    totals = dict(l1.group_by("loss").agg(pl.col("parts").sum()).iter_rows())
    # every one of the six is there and not empty
    for loss in (
        "breakdowns",
        "setup_adjustment",
        "small_stops",
        "reduced_speed",
        "startup_rejects",
        "production_rejects",
    ):
        assert totals[loss] > 0, loss
    # micro-stops inside planned busy time, as many as gold's small stops (the check compared them)
    window = CALENDAR.window(SHIFT)
    micro = injected.filter((pl.col("line_id") == "L1") & (pl.col("kind") == "micro_stop_start"))["event_ts"]
    busy = sum(1 for t in micro if window.busy_seconds(t, t + timedelta(microseconds=1)) > 0)
    assert l1.filter(pl.col("loss") == "small_stops")["count"][0] == pytest.approx(busy, abs=1 + 0.02 * busy)
    assert not _read(lake, "gold/fact_oee_shift")["provisional"].any()


def test_a_planted_injection_gold_did_not_see_fails_the_reconciliation(lake: Path) -> None:
    injected = _read(lake, "edge/injected_events")
    start = injected.filter((pl.col("line_id") == "L1") & (pl.col("kind") == "starvation_start")).head(1)
    end = injected.filter((pl.col("line_id") == "L1") & (pl.col("kind") == "starvation_end")).head(1)
    # a 20-minute starvation 3 h into the shift that never reached the PLC
    planted = pl.concat([start, end]).with_columns(
        pl.Series("event_ts", [T0 + timedelta(hours=3), T0 + timedelta(hours=3, minutes=20)]),
        pl.col("seq") + 100_000,
    )
    write_deltalake(str(lake / "edge" / "injected_events"), planted.to_arrow(), mode="append", partition_by=["day"])
    evaluation = _checks(lake)["injections_reconcile"]
    assert not evaluation.passed
    assert "L1 starved downtime s" in evaluation.metadata["disagreements"].value
    assert _read(lake, "gold/fact_oee_shift").filter(pl.col("line_id") == "L1")["provisional"][0]


@pytest.mark.parametrize(
    ("loss", "column", "what"),
    [
        ("small_stops", "count", "small stops"),
        ("startup_rejects", "parts", "startup rejects"),
        ("reduced_speed", "seconds", "performance loss s"),
        ("breakdowns", "seconds", "blocked downtime s"),
    ],
)
def test_an_altered_gold_row_disagrees_with_the_injections(seeded: Path, loss: str, column: str, what: str) -> None:
    frames = {t: _read(seeded, t) for t in ("gold/fact_losses", "gold/fact_oee_shift", "gold/fact_quality")}
    intervals = _read(seeded, "silver/state_intervals")
    parts = _read(seeded, "silver/part_measurements")
    events = _read(seeded, "edge/injected_events")
    window = CALENDAR.window(SHIFT)

    def disagreements(losses: pl.DataFrame, quality: pl.DataFrame) -> list[str]:
        found = comparisons(window, events, losses, frames["gold/fact_oee_shift"], quality, intervals, parts)
        return [f"{c.line_id} {c.what}" for c in found if not c.agrees]

    assert disagreements(frames["gold/fact_losses"], frames["gold/fact_quality"]) == []
    target = (pl.col("line_id") == "L1") & (pl.col("loss") == loss)
    if loss == "breakdowns":
        target = target & (pl.col("cause") == "blocked")
    altered = frames["gold/fact_losses"].with_columns(
        pl.when(target)
        .then(pl.col(column) + (500 if column == "seconds" else 50))
        .otherwise(pl.col(column))
        .alias(column)
    )
    assert disagreements(altered, frames["gold/fact_quality"]) == [f"L1 {what}"]
    # and the losses no longer add up to fact_oee_shift (the count is no time: it changes no sum)
    if column != "count":
        assert loss_totals_problems(altered, frames["gold/fact_oee_shift"])
    drifted = frames["gold/fact_quality"].with_columns(
        pl.when(pl.col("line_id") == "L1").then(pl.col("mean_mm") + 0.002).otherwise(pl.col("mean_mm")).alias("mean_mm")
    )
    assert disagreements(frames["gold/fact_losses"], drifted) == ["L1 mean deviation mm"]
