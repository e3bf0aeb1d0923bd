"""Issue 14, defect 4: a range of shifts backfilled as one run gives every shift its own metadata.

Three seeded shifts of L1 and L2 (the line models and the variability engine, as `twin up` seeds
history) are materialized bronze -> silver -> gold as one single run over the range, the way a backfill
runs them (BackfillPolicy.single_run). Before the fix, every partition's materialization carried the
range's aggregate (one `oee` for all three shifts); now each partition's event in the instance's event
log carries that shift's own figures, equal to its own gold rows.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from edge_collector.variability.engine import VariabilityConfig
from edge_collector.variability.history import seed_history
from tests.conftest import T0
from twin_pipeline.defs.bronze.assets import bronze_samples_asset
from twin_pipeline.defs.gold.assets import gold_fact_downtime, gold_fact_quality, gold_fact_reliability
from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.defs.silver.assets import silver_part_counts, silver_part_measurements, silver_state_intervals
from twin_pipeline.resources.lake import LakeResource

ASSETS = [
    bronze_samples_asset,
    silver_state_intervals,
    silver_part_counts,
    silver_part_measurements,
    gold_fact_oee_shift,
    gold_fact_downtime,
    gold_fact_quality,
    gold_fact_reliability,
]
#: Frequent faults and a drifting quality error, so that the three shifts' figures differ.
VARIABILITY = VariabilityConfig.model_validate(
    {
        "default": {
            "faults": {
                "time_to_failure": {"kind": "weibull", "shape": 1.5, "scale": 3600.0},
                "repair_time": {"kind": "lognormal", "median": 600.0, "sigma": 0.5},
                "fault_code": {"kind": "categorical", "weights": {"101": 1.0}},
            },
            "quality_error": {"interval_s": 900.0, "distribution": {"kind": "normal", "mean": 0.0, "sd": 0.02}},
        }
    }
)


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dg.DagsterInstance]:
    lake = tmp_path_factory.mktemp("backfill") / "lake"
    end = T0 + timedelta(days=1)
    seed_history(lake, ["L1", "L2"], T0, end, seed=1, variability=VARIABILITY, variability_seed=7)
    shifts = [w.shift_id for w in CALENDAR.windows(T0, end)]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ASSETS,
            instance=instance,
            resources={"lake": LakeResource(root=str(lake))},
            tags={"dagster/asset_partition_range_start": shifts[0], "dagster/asset_partition_range_end": shifts[-1]},
        )
        assert result.success
        assert len(instance.get_run_records()) == 1  # the whole range in one run
        yield lake, shifts, instance


def _meta(instance: dg.DagsterInstance, key: str, shift_id: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key.split("/")), asset_partitions=[shift_id]), limit=1
    ).records
    assert records and records[0].asset_materialization is not None, (key, shift_id)
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_each_shift_of_a_range_reports_its_own_oee(backfilled: tuple[Path, list[str], dg.DagsterInstance]) -> None:
    lake, shifts, instance = backfilled
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    assert sorted(gold["shift_id"].unique()) == shifts and gold.height == 6
    headline = []
    for shift_id in shifts:
        meta = _meta(instance, "gold/fact_oee_shift", shift_id)
        assert meta["dashboard"] == f"http://127.0.0.1:8501/oee?shift={shift_id}"  # the shift's dashboard page
        rows = gold.filter(pl.col("shift_id") == shift_id).sort("line_id")
        assert meta["dagster/row_count"] == rows.height == 2
        for row in rows.iter_rows(named=True):
            line = row["line_id"]
            for name in ("oee", "availability", "performance", "quality"):
                assert meta[f"{name}/{line}"] == round(row[name], 4), (shift_id, line, name)
        # the shift's plant figures: the ratio of its own sums (both lines), never the range's
        apt, pbt = rows["actual_production_time_s"].sum(), rows["planned_busy_time_s"].sum()
        assert meta["availability"] == round(apt / pbt, 4), shift_id
        assert meta["quality"] == round(rows["good"].sum() / rows["produced"].sum(), 4), shift_id
        headline.append(meta["oee"])
    assert len(set(headline)) == len(shifts), f"every shift reported the same OEE: {headline}"


def test_every_shift_asset_reports_each_shifts_own_rows(
    backfilled: tuple[Path, list[str], dg.DagsterInstance],
) -> None:
    lake, shifts, instance = backfilled
    for asset in ASSETS:
        key = asset.key.to_user_string()
        table = pl.read_delta(str(lake / key))
        counts = [_meta(instance, key, s)["dagster/row_count"] for s in shifts]
        assert counts == [table.filter(pl.col("shift_id") == s).height for s in shifts], key
    bronze = pl.read_delta(str(lake / "bronze" / "samples"))
    for shift_id in shifts:
        meta = _meta(instance, "bronze/samples", shift_id)
        own = bronze.filter((pl.col("shift_id") == shift_id) & ~pl.col("carried_in"))
        assert meta["rows_in"] == own.height, shift_id  # no duplicates in seeded history
        reliability = pl.read_delta(str(lake / "gold" / "fact_reliability")).filter(pl.col("shift_id") == shift_id)
        assert _meta(instance, "gold/fact_reliability", shift_id)["failures"] == reliability["failures"].sum()


def test_the_steps_oee_waits_for_run_before_the_rest(backfilled: tuple[Path, list[str], dg.DagsterInstance]) -> None:
    """`dagster/priority` on bronze, the two silver tables OEE reads and `fact_oee_shift`: the run starts
    `fact_oee_shift` before the part measurements, downtime, quality and reliability, which were ready
    earlier (so the seeded history's OEE shows while the rest of its run goes on)."""
    _, _, instance = backfilled
    [record] = instance.get_run_records()
    started = [e.step_key for e in instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)]
    later = ["silver__part_measurements", "gold__fact_downtime", "gold__fact_quality", "gold__fact_reliability"]
    assert all(started.index(step) > started.index("gold__fact_oee_shift") for step in later), started
