"""Asset checks over a whole simulated shift: all pass on the clean shift, and each planted fault
(planted at the edge, where real faults arrive) makes exactly its own check fail."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from edge_collector.schemas import TABLES, edge_table_path
from twin_pipeline.defs.bronze import checks as bronze_checks
from twin_pipeline.defs.bronze.assets import bronze_samples_asset
from twin_pipeline.defs.gold import checks as gold_checks
from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
from twin_pipeline.defs.silver import checks as silver_checks
from twin_pipeline.defs.silver.assets import silver_part_counts, silver_state_intervals
from twin_pipeline.resources.lake import LakeResource

SHIFT = "2026-11-24-0600"  # 05:00-13:00 UTC
ASSETS = [bronze_samples_asset, silver_state_intervals, silver_part_counts, gold_fact_oee_shift]
CHECKS = [
    c
    for module in (bronze_checks, silver_checks, gold_checks)
    for c in vars(module).values()
    if isinstance(c, dg.AssetChecksDefinition)
]
assert (
    len(CHECKS) == 12
)  # every per-shift check of defs/{bronze,silver,gold}/checks.py (gold's: those of the polars engine)


def at(hour: int, minute: int = 0, second: float = 0.0) -> datetime:
    return datetime(2026, 11, 24, hour, minute, int(second), int(second % 1 * 1e6), tzinfo=UTC)


def run(lake: Path, selection: dg.AssetSelection | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ASSETS, *CHECKS],
        partition_key=SHIFT,
        resources={"lake": LakeResource(root=str(lake))},
        selection=selection,
        raise_on_error=False,
    )


def failed(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}


def raw(lake: Path) -> str:
    return str(edge_table_path(lake, "raw_samples"))


def append_edge(lake: Path, line_id: str, tag: str, ts: datetime, value: float) -> None:
    template = pl.read_delta(raw(lake)).filter((pl.col("line_id") == line_id) & (pl.col("tag") == tag)).head(1)
    row = template.with_columns(
        pl.lit(ts).cast(pl.Datetime("us", "UTC")).alias(c) for c in ("source_ts", "server_ts", "received_ts")
    ).with_columns(pl.lit(value).alias("value"))
    write_deltalake(raw(lake), row.to_arrow().cast(TABLES["raw_samples"]), mode="append", partition_by=["day"])


def plant_gap(lake: Path) -> None:
    """30 minutes of L1 never reached the edge (while it ran steadily: a gap over its fault would
    also hide the recovery, and the fault would seem to last until the data resumed)."""
    DeltaTable(raw(lake)).delete(
        f"line_id = 'L1' AND source_ts >= '{at(9, 30).isoformat()}' AND source_ts < '{at(10).isoformat()}'"
    )


def plant_out_of_range(lake: Path) -> None:
    """A state number PackML does not have (for 3 s, then Execute again), and a deviation no gauge
    measures."""
    append_edge(lake, "L2", "Status.StateCurrent", at(8, 0, 0.5), 99.0)
    append_edge(lake, "L2", "Status.StateCurrent", at(8, 0, 3.5), 6.0)
    append_edge(lake, "L2", "Quality.LastPartDeviation", at(8, 0, 0.7), 5000.0)


def plant_counter_reset(lake: Path) -> None:
    """L2's PLC restarted at 09:00: its part counter counts from 0 again."""
    rows = (
        pl.read_delta(raw(lake))
        .filter(
            (pl.col("line_id") == "L2") & (pl.col("tag") == "Admin.ProdProcessedCount") & (pl.col("source_ts") >= at(9))
        )
        .sort("source_ts")
    )
    offset = float(rows["value"][0]) - 1.0
    DeltaTable(raw(lake)).update(
        predicate=f"line_id = 'L2' AND tag = 'Admin.ProdProcessedCount' AND source_ts >= '{at(9).isoformat()}'",
        updates={"value": f"value - {offset}"},
    )


def plant_wrong_design_speed(lake: Path) -> None:
    """L2 reports half its real design speed: more parts than the 'ideal' rate allows (P > 1)."""
    DeltaTable(raw(lake)).update(
        predicate="line_id = 'L2' AND tag = 'Admin.MachDesignSpeed'", updates={"value": "value / 2"}
    )


def plant_edge_behind(lake: Path) -> None:
    """The collector has not written past the shift end yet (the shift is materialized too early)."""
    DeltaTable(raw(lake)).delete(f"source_ts >= '{at(13).isoformat()}'")


@pytest.fixture
def lake(full_shift: tuple[Path, dict], tmp_path: Path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(full_shift[0], copy)
    return copy


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (None, set()),
        (plant_gap, {"bronze_no_gaps"}),
        (plant_out_of_range, {"bronze_value_ranges"}),
        (plant_counter_reset, {"part_counters_monotonic"}),
        (plant_wrong_design_speed, {"performance_at_most_1"}),
        (plant_edge_behind, {"edge_caught_up"}),
    ],
    ids=["clean", "gap", "out_of_range", "counter_reset", "performance_above_1", "edge_behind"],
)
def test_each_planted_fault_fails_exactly_its_check(
    lake: Path, plant: Callable[[Path], None] | None, expected: set[str]
) -> None:
    """Q1 (RELIABILITY.md): Each planted fault fails exactly its check."""
    if plant is not None:
        plant(lake)
    result = run(lake)
    assert len(result.get_asset_check_evaluations()) == len(CHECKS)
    assert failed(result) == expected
    assert result.success  # none of these is a blocking check: gold is published
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id")
    if plant is plant_counter_reset:  # the reset is explained, and the parts still all counted
        l2 = gold.row(1, named=True)
        assert l2["provisional"] and l2["provisional_reason"] == "counter reset"
        assert l2["produced"] + l2["produced_in_breaks"] == pytest.approx(
            pl.read_delta(str(lake / "silver" / "part_counts")).filter(pl.col("line_id") == "L2")["produced"][0]
        )
    if plant is plant_out_of_range:  # the bogus state is unknown time, not a crash and not production
        l2 = gold.row(1, named=True)
        assert l2["provisional"] and l2["provisional_reason"] == "unknown state 3 s"
    if plant is plant_gap:  # nobody watched: the shift is provisional
        assert gold["provisional_reason"].to_list() == ["data gap", None]
    if plant is None:
        assert not gold["provisional"].any()


def test_a_failed_blocking_check_stops_gold_and_flags_the_published_shift(lake: Path) -> None:
    """Q1 (RELIABILITY.md): A failed blocking check stops gold and flags the published shift."""
    assert run(lake).success
    published = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    # a duplicate sample reaches bronze (say, a second writer); bronze itself is not re-run
    bronze = str(lake / "bronze" / "samples")
    write_deltalake(bronze, pl.read_delta(bronze).head(1).to_arrow(), mode="append", partition_by=["shift_id"])
    downstream = dg.AssetSelection.assets(bronze_samples_asset).downstream() - dg.AssetSelection.assets(
        bronze_samples_asset
    )
    result = run(lake, downstream | dg.AssetSelection.checks(bronze_checks.bronze_no_duplicates))
    assert failed(result) == {"bronze_no_duplicates"}
    assert not result.success
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key.path[0] == "gold"]
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "bronze_no_duplicates")
    assert evaluation.metadata["duplicate_rows"].value == 2
    assert evaluation.metadata["gold_rows_marked_provisional"].value == 2
    flagged = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id")
    assert flagged["provisional"].all()
    assert flagged["provisional_reason"].to_list() == ["check bronze_no_duplicates failed"] * 2
    # the figures stay as published: only the flag changed
    assert flagged.drop("provisional", "provisional_reason").equals(
        published.sort("line_id").drop("provisional", "provisional_reason")
    )


def test_bronze_not_reconciled_with_a_late_edge_write_blocks_gold(lake: Path) -> None:
    """Q1 (RELIABILITY.md): Bronze not reconciled with a late edge write blocks gold."""
    assert run(lake).success
    append_edge(lake, "L1", "Sim.FeedRate", at(12, 59, 59), 5.5)  # arrives after bronze was built
    only_checks = dg.AssetSelection.checks(bronze_checks.bronze_matches_edge) | dg.AssetSelection.assets(
        gold_fact_oee_shift
    )
    result = run(lake, only_checks)
    assert failed(result) == {"bronze_matches_edge"}
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.metadata["missing_in_bronze"].value == 1 and evaluation.metadata["not_at_edge"].value == 0
    assert run(lake).success  # re-running the shift takes the late row in
    assert not failed(run(lake))


def test_an_edge_table_that_broke_its_schema_blocks_gold(lake: Path) -> None:
    """Q1 (RELIABILITY.md): An edge table that broke its schema blocks gold."""
    assert run(lake).success
    table = pl.read_delta(raw(lake)).with_columns(pl.col("seq").cast(pl.String))
    write_deltalake(raw(lake), table.to_arrow(), mode="overwrite", schema_mode="overwrite", partition_by=["day"])
    result = run(
        lake, dg.AssetSelection.checks(bronze_checks.bronze_schema) | dg.AssetSelection.assets(gold_fact_oee_shift)
    )
    assert failed(result) == {"bronze_schema"}
    problems = result.get_asset_check_evaluations()[0].metadata["problems"].value
    assert problems == "edge raw_samples.seq is String, contract says Int64"
