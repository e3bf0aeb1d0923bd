"""Silver and gold over a whole simulated shift: the pipeline's figures against the PLC's own."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from twin_pipeline.defs.bronze import bronze_samples_asset
from twin_pipeline.defs.gold import gold_fact_oee_shift
from twin_pipeline.defs.silver import silver_part_counts, silver_state_intervals
from twin_pipeline.profiles import LakeResource

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
    assert run(lake).success
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id")
    assert gold["line_id"].to_list() == ["L1", "L2"]
    for row in gold.iter_rows(named=True):
        plc = truth[row["line_id"]]
        assert row["shift_length_s"] == 8 * 3600 and row["planned_busy_time_s"] == 8 * 3600 - 45 * 60
        # actual production time equals the PLC's own Execute accumulator (to the microsecond stamps)
        assert row["actual_production_time_s"] == pytest.approx(plc["execute_s"], abs=0.01)
        assert row["produced"] == plc["produced"] and row["reject"] == plc["rejects"]
        assert row["good"] + row["reject"] == row["produced"]
        assert row["downtime_fault_s"] == pytest.approx(plc["fault_s"], abs=0.01)
        assert row["ideal_cycle_time_s"] == 10.0  # 6 parts/min
        assert row["oee"] == pytest.approx(row["availability"] * row["performance"] * row["quality"], abs=1e-12)
        assert row["performance"] == pytest.approx(0.95, abs=0.01)  # fed at 95 % of design speed
        assert not row["provisional"]
    l1, l2 = gold.row(0, named=True), gold.row(1, named=True)
    assert l1["downtime_fault_s"] > 10 * 60 and l2["downtime_fault_s"] == 0  # the planted fault (aborted 10 min), on L1 only
    assert l1["downtime_setup_s"] > 2 * 60  # Stopped, Resetting, Idle, Starting after the clear
    assert l1["availability"] < l2["availability"]


def test_state_intervals_tile_the_shift(lake: Path) -> None:
    assert run(lake).success
    intervals = pl.read_delta(str(lake / "silver" / "state_intervals"))
    for (line_id,), rows in intervals.group_by(["line_id"]):
        rows = rows.sort("start")
        assert rows["duration_s"].sum() == pytest.approx(8 * 3600)
        assert (rows["start"][1:] == rows["end"][:-1]).all()
    faults = intervals.filter(pl.col("state_name") == "Aborting")
    assert faults["stop_reason"].to_list() == [42]


def test_rerun_of_the_shift_gives_identical_gold(lake: Path) -> None:
    assert run(lake).success
    first = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id")
    assert run(lake).success
    assert pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id").equals(first)
