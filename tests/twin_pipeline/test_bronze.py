"""Bronze over edge tables written by the real simulator and collector."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import polars as pl
from deltalake import write_deltalake

from edge_collector.schemas import edge_table_path
from twin_pipeline.defs.bronze.assets import bronze_samples_asset
from twin_pipeline.resources.lake import LakeResource

SHIFT = "2026-11-24-0600"


def materialize(lake: Path, *partitions: str) -> dg.ExecuteInProcessResult:
    resources = {"lake": LakeResource(root=str(lake))}
    if len(partitions) == 1:
        return dg.materialize([bronze_samples_asset], partition_key=partitions[0], resources=resources)
    return dg.materialize(
        [bronze_samples_asset],
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": partitions[0],
            "dagster/asset_partition_range_end": partitions[-1],
        },
    )


def read_bronze(lake: Path) -> pl.DataFrame:
    return pl.read_delta(str(lake / "bronze" / "samples")).sort("line_id", "tag", "source_ts")


def test_bronze_is_the_shift_slice_deduplicated_and_rerun_is_identical(edge_lake: Path, tmp_path: Path) -> None:
    """O1 (RELIABILITY.md): Bronze is the shift slice deduplicated and rerun is identical."""
    lake = tmp_path / "lake"
    shutil.copytree(edge_lake, lake)
    raw = pl.read_delta(str(edge_table_path(lake, "raw_samples")))
    # plant duplicates: the same 100 rows again, as a replay from another session would be
    replay = raw.head(100).with_columns(
        pl.lit("replay").alias("session_id"), (pl.col("received_ts") + pl.duration(seconds=5)).alias("received_ts")
    )
    write_deltalake(str(edge_table_path(lake, "raw_samples")), replay.to_arrow(), mode="append", partition_by=["day"])

    result = materialize(lake, SHIFT)
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["duplicates_removed"].value == 100
    bronze = read_bronze(lake)
    assert bronze.height == raw.height == meta["dagster/row_count"].value > 5000
    assert bronze.select("line_id", "tag", "source_ts").is_duplicated().sum() == 0
    assert set(bronze["shift_id"]) == {SHIFT}
    assert "replay" not in set(bronze["session_id"])  # the earliest received copy wins

    again = materialize(lake, SHIFT)
    assert again.success
    assert read_bronze(lake).equals(bronze)  # a re-run replaces exactly that shift: identical content


def test_a_shift_without_samples_holds_only_the_carried_in_values_and_other_shifts_stay(
    edge_lake: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(edge_lake, lake)
    assert materialize(lake, SHIFT).success
    before = read_bronze(lake)
    assert not before["carried_in"].any()  # the PLC started at the shift start: nothing before it
    assert materialize(lake, "2026-11-24-1400").success  # no data in the late shift
    late = read_bronze(lake).filter(pl.col("shift_id") == "2026-11-24-1400")
    assert late["carried_in"].all()
    # exactly the last row of each (line, tag) of the early shift
    last = before.sort("source_ts").group_by("line_id", "tag").last().sort("line_id", "tag")
    assert late.sort("line_id", "tag").drop("shift_id", "carried_in").equals(last.drop("shift_id", "carried_in"))
    assert read_bronze(lake).filter(pl.col("shift_id") == SHIFT).equals(before)


def test_a_range_of_shifts_is_one_run(edge_lake: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(edge_lake, lake)
    result = materialize(lake, "2026-11-23-2200", "2026-11-24-1400")
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["shifts"].value == 3
    bronze = read_bronze(lake)
    assert set(bronze.filter(~pl.col("carried_in"))["shift_id"]) == {SHIFT}
    # the late shift starts from the early shift's last values (nothing before the PLC started)
    assert set(bronze.filter(pl.col("carried_in"))["shift_id"]) == {"2026-11-24-1400"}


#: Every shift-partitioned asset (the backfill command of docs/pipeline.md): the dimensions are not partitioned.
SHIFT_SELECTION = 'group:bronze or group:silver or (group:gold and not key:"gold/dim_*")'


def test_cli_backfill_with_a_partition_range(edge_lake: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    lake = tmp_path / "twin" / "lake"
    shutil.copytree(edge_lake, lake)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "TWIN_HOME": str(tmp_path / "twin"), "DAGSTER_HOME": str(tmp_path)}
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "twin_pipeline.definitions",
            "--select",
            SHIFT_SELECTION,
            "--partition-range",
            "2026-11-24-0600...2026-11-24-2200",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert set(read_bronze(lake).filter(~pl.col("carried_in"))["shift_id"]) == {SHIFT}
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    # the two later shifts have no data: the lines are known, but nobody watched them
    assert gold.filter(pl.col("shift_id") != SHIFT)["provisional_reason"].unique().to_list() == ["data gap"]
    assert gold.filter(pl.col("shift_id") != SHIFT).height == 4


def test_a_different_value_at_the_same_stamp_is_kept_and_ordered_by_server_time_then_seq() -> None:
    """Defect 3 in the pipeline: bronze drops only replays (same value at the same stamp); changes stamped
    in one tick keep the order of their server timestamps, then of the collector's sequence."""
    from datetime import UTC, datetime, timedelta

    from edge_collector.schemas import RAW_SAMPLES
    from twin_pipeline.lib.transforms.bronze import typed
    from twin_pipeline.lib.transforms.states import _changes

    t = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    ms = timedelta(milliseconds=1)

    def row(value: float, server: datetime, seq: int, received: datetime = t) -> dict[str, object]:
        return {
            "line_id": "L1",
            "tag": "Status.StateCurrent",
            "source_ts": t,
            "server_ts": server,
            "received_ts": received,
            "value": value,
            "value_text": None,
            "status_code": 0,
            "session_id": "s",
            "seq": seq,
            "day": "2026-11-24",
        }

    raw = pl.DataFrame(
        [row(9.0, t + 2 * ms, 3), row(6.0, t + ms, 2), row(2.0, t + ms, 1), row(6.0, t + ms, 2, t + 5 * ms)],
        schema=pl.from_arrow(RAW_SAMPLES.empty_table()).schema,
    )
    bronze = typed(raw, SHIFT)
    assert sorted(bronze["value"].to_list()) == [2.0, 6.0, 9.0]  # the replay of 6.0 is gone, nothing else
    # server time orders 2.0 / 6.0 (one server tick too) by seq, then 9.0 (later server time)
    assert [v for _, v in _changes(bronze, "L1", "Status.StateCurrent")] == [2, 6, 9]
