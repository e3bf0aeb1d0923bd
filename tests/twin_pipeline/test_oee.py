"""Silver and gold over a whole simulated shift: the pipeline's figures against the PLC's own."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from twin_pipeline.defs.bronze.assets import bronze_samples_asset
from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
from twin_pipeline.defs.silver.assets import silver_part_counts, silver_state_intervals
from twin_pipeline.resources.lake import LakeResource

SHIFT = "2026-11-24-0600"
ASSETS = [bronze_samples_asset, silver_state_intervals, silver_part_counts, gold_fact_oee_shift]


def run(lake: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(ASSETS, partition_key=SHIFT, resources={"lake": LakeResource(root=str(lake))})


@pytest.fixture
def lake(full_shift: tuple[Path, dict], tmp_path: Path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(full_shift[0], copy)
    return copy


def test_gold_oee_reconciles_with_the_plc(lake: Path, full_shift: tuple[Path, dict]) -> None:
    truth = full_shift[1]
    result = run(lake)
    assert result.success
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id")
    # the UI shows the headline without a notebook: per line, and for the plant rolled up from sums
    meta = {k: v.value for k, v in result.asset_materializations_for_node("gold__fact_oee_shift")[0].metadata.items()}
    for row in gold.iter_rows(named=True):
        assert meta[f"oee/{row['line_id']}"] == round(row["oee"], 4)
        assert f"| {row['line_id']} | {100 * row['availability']:.1f} %" in meta["by_line"]
    assert min(gold["oee"]) < meta["oee"] < max(gold["oee"])
    assert gold["line_id"].to_list() == ["L1", "L2"]
    for row in gold.iter_rows(named=True):
        plc = truth[row["line_id"]]
        assert row["shift_length_s"] == 8 * 3600 and row["planned_busy_time_s"] == 8 * 3600 - 45 * 60
        # Execute time equals the PLC's own accumulator (to the microsecond stamps); the simulated line runs
        # through the planned breaks, which OEE excludes and reports apart
        assert row["actual_production_time_s"] + row["production_in_breaks_s"] == pytest.approx(
            plc["execute_s"], abs=0.01
        )
        assert row["production_in_breaks_s"] == pytest.approx(45 * 60, abs=0.01)
        assert row["actual_production_time_s"] <= row["planned_busy_time_s"]
        assert row["produced"] + row["produced_in_breaks"] == plc["produced"]
        assert 250 <= row["produced_in_breaks"] <= 260  # 45 min at 5.7 parts/min
        assert row["reject"] <= plc["rejects"]
        assert row["good"] + row["reject"] == row["produced"]
        assert row["downtime_fault_s"] == pytest.approx(plc["fault_s"], abs=0.01)
        assert row["ideal_cycle_time_s"] == 10.0  # 6 parts/min
        assert row["oee"] == pytest.approx(row["availability"] * row["performance"] * row["quality"], abs=1e-12)
        assert row["performance"] == pytest.approx(0.95, abs=0.01)  # fed at 95 % of design speed
        assert not row["provisional"]
    l1, l2 = gold.row(0, named=True), gold.row(1, named=True)
    assert (
        l1["downtime_fault_s"] > 10 * 60 and l2["downtime_fault_s"] == 0
    )  # the planted fault (aborted 10 min), on L1 only
    assert l1["downtime_setup_s"] > 2 * 60  # Stopped, Resetting, Idle, Starting after the clear
    assert l1["availability"] < l2["availability"]


def test_state_intervals_tile_the_shift(lake: Path) -> None:
    assert run(lake).success
    intervals = pl.read_delta(str(lake / "silver" / "state_intervals"))
    for (_line_id,), rows in intervals.group_by(["line_id"]):
        rows = rows.sort("start")
        assert rows["duration_s"].sum() == pytest.approx(8 * 3600)
        assert (rows["start"][1:] == rows["end"][:-1]).all()
        assert rows.filter(pl.col("planned_break"))["duration_s"].sum() == pytest.approx(45 * 60)
    faults = intervals.filter(pl.col("state_name") == "Aborting")
    assert faults["stop_reason"].to_list() == [42]


def test_rerun_of_the_shift_gives_identical_gold(lake: Path) -> None:
    """O1 (RELIABILITY.md): Rerun of the shift gives identical gold."""
    assert run(lake).success
    first = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id")
    assert run(lake).success
    assert pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id").equals(first)


def content(path: Path) -> tuple[int, int, str]:
    """(Delta version, rows, SHA-256 of the rows sorted on every column) of one table."""
    from deltalake import DeltaTable

    frame = pl.read_delta(str(path))
    digest = hashlib.sha256(frame.sort(pl.all()).write_csv().encode()).hexdigest()
    return DeltaTable(str(path)).version(), frame.height, digest


def test_o1_rematerialised_and_backfilled_shift_has_identical_content(lake: Path) -> None:
    """O1 (RELIABILITY.md): the shift materialised twice, then once more as a backfill (a partition-range
    run): every table's Delta version advances, its row count and content hash stay those of the first run,
    and the keys stay unique (nothing appended twice)."""
    tables = ("bronze/samples", "silver/state_intervals", "silver/part_counts", "gold/fact_oee_shift")
    assert run(lake).success
    first = {t: content(lake / t) for t in tables}
    assert run(lake).success
    again = {t: content(lake / t) for t in tables}
    backfill = dg.materialize(
        ASSETS,
        resources={"lake": LakeResource(root=str(lake))},
        tags={"dagster/asset_partition_range_start": SHIFT, "dagster/asset_partition_range_end": SHIFT},
    )
    assert backfill.success
    backfilled = {t: content(lake / t) for t in tables}
    for t in tables:
        (v1, rows, digest), (v2, rows2, digest2), (v3, rows3, digest3) = first[t], again[t], backfilled[t]
        assert v1 < v2 < v3, (t, v1, v2, v3)  # each run wrote a new table version ...
        assert rows == rows2 == rows3 > 0, (t, rows, rows2, rows3)  # ... with the same rows
        assert digest == digest2 == digest3, t
    assert first["gold/fact_oee_shift"][1] == 2  # one row per line
    bronze = pl.read_delta(str(lake / "bronze" / "samples"))
    assert bronze.select("line_id", "tag", "source_ts").is_duplicated().sum() == 0
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    assert gold.select("shift_id", "line_id").is_duplicated().sum() == 0


def test_oee_invariants_fire_on_a_planted_silver_fault_and_flag_the_shift(lake: Path) -> None:
    from deltalake import write_deltalake

    from twin_pipeline.defs.bronze.checks import bronze_no_duplicates
    from twin_pipeline.defs.gold.checks import oee_invariants
    from twin_pipeline.defs.silver.checks import part_counters_monotonic

    resources = {"lake": LakeResource(root=str(lake))}
    checks = [bronze_no_duplicates, part_counters_monotonic, oee_invariants]
    result = dg.materialize([*ASSETS, *checks], partition_key=SHIFT, resources=resources)
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {"bronze_no_duplicates": True, "part_counters_monotonic": True, "oee_invariants": True}
    # a planted fault in silver (a duplicated Execute interval): gold accounts for more time than the shift
    select = dg.AssetSelection.assets(gold_fact_oee_shift) | dg.AssetSelection.checks(*checks)
    silver_path = lake / "silver" / "state_intervals"
    execute = pl.read_delta(str(silver_path)).filter(pl.col("state_name") == "Execute").head(1)
    write_deltalake(str(silver_path), execute.to_arrow(), mode="append", partition_by=["shift_id"])
    result = dg.materialize(
        [*ASSETS, *checks], partition_key=SHIFT, resources=resources, selection=select, raise_on_error=False
    )
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {"bronze_no_duplicates": True, "part_counters_monotonic": True, "oee_invariants": False}
    flagged = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    assert flagged["provisional_reason"].to_list() == ["check oee_invariants failed"] * 2


def test_dst_night_shift_is_7_hours_in_gold(dst_night: tuple[Path, dict], tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(dst_night[0], lake)
    night = "2026-03-28-2200"
    assert dg.materialize(ASSETS, partition_key=night, resources={"lake": LakeResource(root=str(lake))}).success
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    assert gold["shift_id"].unique().to_list() == [night]
    for row in gold.iter_rows(named=True):
        plc = dst_night[1][row["line_id"]]
        assert row["shift_length_s"] == 7 * 3600 and row["planned_busy_time_s"] == 7 * 3600 - 45 * 60
        assert row["actual_production_time_s"] + row["production_in_breaks_s"] == pytest.approx(
            plc["execute_s"], abs=0.01
        )
        assert row["produced"] + row["produced_in_breaks"] == plc["produced"]
        assert 0 < row["availability"] <= 1 and not row["provisional"]


def test_fault_downtime_matches_the_injected_ground_truth(engine_shift: tuple[Path, dict], tmp_path: Path) -> None:
    from deltalake import write_deltalake

    from twin_pipeline.defs.gold.checks import fault_downtime_matches_injections

    lake = tmp_path / "lake"
    shutil.copytree(engine_shift[0], lake)
    resources = {"lake": LakeResource(root=str(lake))}
    injected = pl.read_delta(str(lake / "edge" / "injected_events"))
    assert injected.filter(pl.col("kind") == "fault_start").height >= 4  # ~every 100 min over 8 h
    result = dg.materialize([*ASSETS, fault_downtime_matches_injections], partition_key=SHIFT, resources=resources)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed, evaluation.metadata
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id")
    assert gold["downtime_fault_s"][0] > 4 * 600 and gold["downtime_fault_s"][1] == 0
    # a fault the pipeline did not see (injected, but missing from the PLC data) makes the check fail
    extra = (
        injected.filter(pl.col("kind").is_in(["fault_start", "fault_end"]))
        .head(2)
        .with_columns(pl.col("event_ts") + pl.duration(minutes=20), pl.col("seq") + 1000)
    )
    write_deltalake(str(lake / "edge" / "injected_events"), extra.to_arrow(), mode="append", partition_by=["day"])
    result = dg.materialize(
        [*ASSETS, fault_downtime_matches_injections], partition_key=SHIFT, resources=resources, raise_on_error=False
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed


def test_fact_downtime_has_one_row_per_stop_with_its_reason(lake: Path) -> None:
    from twin_pipeline.defs.gold.assets import gold_fact_downtime

    assert dg.materialize(
        [*ASSETS, gold_fact_downtime], partition_key=SHIFT, resources={"lake": LakeResource(root=str(lake))}
    ).success
    stops = pl.read_delta(str(lake / "gold" / "fact_downtime")).sort("line_id", "stop_start")
    l1 = stops.filter(pl.col("line_id") == "L1")
    # the start-up at the shift start, then the planted fault 42 (aborted, cleared, reset, restarted)
    assert l1["category"].to_list() == ["none", "fault"]
    fault = l1.row(1, named=True)
    assert fault["reason_code"] == 42 and fault["states"].startswith("Aborting>Aborted>Clearing>Stopped")
    assert 12 * 60 < fault["duration_s"] < 13 * 60 and not fault["is_microstop"]
    assert l1.row(0, named=True)["open_at_shift_start"] and l1.row(0, named=True)["is_microstop"]
    assert stops.filter(pl.col("line_id") == "L2")["category"].to_list() == ["none"]
    # stops plus Execute time account for the planned busy time
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).filter(pl.col("line_id") == "L1").row(0, named=True)
    assert l1["duration_s"].sum() + gold["actual_production_time_s"] == pytest.approx(gold["planned_busy_time_s"])


def test_dimensions_join_the_facts(lake: Path) -> None:
    from twin_pipeline.defs.gold.dims import gold_dim_date, gold_dim_line, gold_dim_shift

    resources = {"lake": LakeResource(root=str(lake))}
    assert run(lake).success
    assert dg.materialize(
        [*ASSETS, gold_dim_line, gold_dim_shift, gold_dim_date],
        resources=resources,
        selection=dg.AssetSelection.assets(gold_dim_line, gold_dim_shift, gold_dim_date),
    ).success
    lines = pl.read_delta(str(lake / "gold" / "dim_line")).sort("line_id")
    assert lines.to_dicts() == [
        {"line_id": "L1", "design_speed_ppm": 6.0, "tolerance_mm": 0.05, "ideal_cycle_time_s": 10.0},
        {"line_id": "L2", "design_speed_ppm": 6.0, "tolerance_mm": 0.04, "ideal_cycle_time_s": 10.0},
    ]
    shifts = pl.read_delta(str(lake / "gold" / "dim_shift"))
    fact = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    joined = fact.join(shifts, on="shift_id", how="inner").join(lines, on="line_id", how="inner")
    assert joined.height == fact.height == 2
    night = shifts.filter(pl.col("shift_id") == "2026-10-24-2200").row(0, named=True)
    assert night["duration_s"] == 9 * 3600
    dates = pl.read_delta(str(lake / "gold" / "dim_date"))
    assert shifts["local_date"].is_in(dates["date"].implode()).all()


def test_fact_quality_counts_exactly_the_plc_rejects(lake: Path, full_shift: tuple[Path, dict]) -> None:
    from twin_pipeline.defs.gold.assets import gold_fact_quality
    from twin_pipeline.defs.silver.assets import silver_part_measurements

    assert dg.materialize(
        [*ASSETS, silver_part_measurements, gold_fact_quality],
        partition_key=SHIFT,
        resources={"lake": LakeResource(root=str(lake))},
    ).success
    quality = pl.read_delta(str(lake / "gold" / "fact_quality")).sort("line_id")
    l1 = quality.row(0, named=True)
    assert l1["parts_measured"] == full_shift[1]["L1"]["produced"]
    assert l1["out_of_tolerance"] == full_shift[1]["L1"]["rejects"] > 0  # every reject is out of tolerance
    assert l1["mean_mm"] == pytest.approx(0.045, abs=0.001) and l1["sigma_mm"] == pytest.approx(0.005, rel=0.15)
    assert l1["cpk"] == pytest.approx((0.05 - l1["mean_mm"]) / (3 * l1["sigma_mm"]))
    l2 = quality.row(1, named=True)
    assert l2["out_of_tolerance"] == 0 and l2["cp"] > 2  # L2 has no quality error: a capable process
    parts = pl.read_delta(str(lake / "silver" / "part_measurements")).filter(pl.col("line_id") == "L1")
    assert parts.height == l1["parts_measured"] and parts["measured_ts"].is_sorted()
    assert parts["tolerance_mm"].unique().to_list() == [0.05]


def test_every_table_written_has_its_contract_schema(lake: Path) -> None:
    from twin_pipeline.defs.gold.assets import gold_fact_downtime, gold_fact_quality, gold_fact_reliability
    from twin_pipeline.defs.gold.dims import gold_dim_date, gold_dim_line, gold_dim_shift
    from twin_pipeline.defs.gold.losses import gold_fact_losses
    from twin_pipeline.defs.silver.assets import silver_part_measurements
    from twin_pipeline.lib.contracts import TABLES

    resources = {"lake": LakeResource(root=str(lake))}
    gold = [gold_fact_downtime, gold_fact_quality, gold_fact_reliability, gold_fact_losses]
    assert dg.materialize(
        [*ASSETS, silver_part_measurements, *gold],
        partition_key=SHIFT,
        resources=resources,
    ).success
    assert dg.materialize([gold_dim_shift, gold_dim_date, gold_dim_line], resources=resources).success
    for table, contract in TABLES.items():
        written = pl.read_delta(str(lake / table))
        assert written.height > 0, table
        assert written.schema == contract, table


def test_a_backfill_of_several_shifts_in_one_run_equals_shift_by_shift_runs(lake: Path, tmp_path: Path) -> None:
    """O1 (RELIABILITY.md): A backfill of several shifts in one run equals shift by shift runs."""
    from twin_pipeline.defs.bronze import checks as bronze_checks
    from twin_pipeline.defs.gold.assets import gold_fact_reliability
    from twin_pipeline.defs.silver import checks as silver_checks

    checks = [
        c
        for module in (bronze_checks, silver_checks)
        for c in vars(module).values()
        if isinstance(c, dg.AssetChecksDefinition)
    ]
    assets = [*ASSETS, gold_fact_reliability, *checks]
    other = tmp_path / "other"
    shutil.copytree(lake, other)
    resources = {"lake": LakeResource(root=str(lake))}
    shifts = ["2026-11-23-2200", SHIFT, "2026-11-24-1400"]  # before, the shift, and its first minute after
    result = dg.materialize(
        assets,
        resources=resources,
        tags={"dagster/asset_partition_range_start": shifts[0], "dagster/asset_partition_range_end": shifts[-1]},
    )
    assert result.success
    bronze_events = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["bronze", "samples"]]
    assert bronze_events[0].materialization.metadata["shifts"].value == 3  # one step for the whole range
    for shift_id in shifts:
        assert dg.materialize(assets, partition_key=shift_id, resources={"lake": LakeResource(root=str(other))}).success
    for table in ("silver/state_intervals", "silver/part_counts", "gold/fact_oee_shift", "gold/fact_reliability"):
        one_run = pl.read_delta(str(lake / table)).sort(pl.all())
        shift_by_shift = pl.read_delta(str(other / table)).sort(pl.all())
        assert one_run.height > 0 and one_run.equals(shift_by_shift), table
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    assert sorted(gold["shift_id"].unique()) == [SHIFT, "2026-11-24-1400"]  # no data before 06:00
