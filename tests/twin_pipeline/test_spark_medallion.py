"""The Spark medallion job (`twin_pipeline/spark_jobs/`): bronze, silver and gold equal to the polars assets'
to 1e-9 on every table, on the golden vectors (silver and gold from their bronze rows, in one Spark pass) and
on a seeded range of two lines read from a raw zone laid out from the same edge lake, with one line landed by
two edges (handover: no double counting), run through Dagster Pipes on local pyspark as the `spark` engine
runs it; and the Spark-native table IO (Delta `replaceWhere`, Unity Catalog) checked exactly as data.

One Spark session in this process (the golden vectors), one job process (the range)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from edge_collector.variability.history import seed_history, variability_from_toml
from tests.support.quick_spark import quick_spark
from tests.support.raw_zone_local import lay_out_raw_zone
from tests.twin_pipeline.test_golden_oee import VECTORS, bronze
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.contracts import TABLES
from twin_pipeline.lib.quality.silences import line_silences
from twin_pipeline.lib.transforms.counters import part_counts
from twin_pipeline.lib.transforms.oee import oee_rows
from twin_pipeline.lib.transforms.states import state_intervals
from twin_pipeline.resources.lake import LakeResource
from twin_pipeline.resources.oee_engines import LocalSparkOeeJob
from twin_pipeline.spark_jobs.extras import job_extras, source_extras

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)  # an early shift's start (06:00 Berlin)
#: Six shifts: every shift boundary carries rows, both lines fault, L2's copies collide; a week (21 shifts)
#: proved nothing more and cost about 35 s (seeding and the job's per-shift work).
DAYS = 2
#: How each table's rows are put in one order to compare them.
ORDER = {
    "bronze/samples": ["shift_id", "line_id", "tag", "source_ts", "value", "carried_in"],
    "silver/state_intervals": ["shift_id", "line_id", "start"],
    "silver/part_counts": ["shift_id", "line_id"],
    "silver/part_measurements": ["shift_id", "line_id", "measured_ts", "deviation_mm"],
    "gold/fact_oee_shift": ["shift_id", "line_id"],
}


@pytest.fixture(scope="module", autouse=True)
def quick_jvm() -> Iterator[None]:
    with quick_spark():
        yield


def assert_frames_equal(spark_rows: pl.DataFrame, polars_rows: pl.DataFrame, table: str) -> None:
    """Same rows, same contract columns and types; floats to 1e-9 (relative, or absolute near zero)."""
    assert spark_rows.schema == polars_rows.schema, table
    assert spark_rows.height == polars_rows.height, table
    a, b = (f.sort(ORDER[table], nulls_last=True) for f in (spark_rows, polars_rows))
    for name in a.columns:
        x, y = a[name], b[name]
        assert (x.is_null() == y.is_null()).all(), f"{table}.{name}: nulls differ"
        if x.dtype == pl.Float64:
            off = ((x - y).abs() > 1e-9 * (1 + y.abs())).fill_null(False)
        else:
            off = (x != y).fill_null(False)
        assert not off.any(), (
            f"{table}.{name}: {a.filter(off).head(3).to_dicts()} != {b.filter(off).head(3).to_dicts()}"
        )


# ---------------------------------------------------------------- the golden vectors


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from twin_pipeline.spark_jobs.oee_job import session

    spark = session("twin-medallion-tests")
    yield spark
    spark.stop()


def test_the_golden_vectors_through_spark_silver_and_gold(spark: Any) -> None:
    """Every vector at once (its line id made its name, so the vectors of one shift stay apart): the Spark
    silver tables and gold row equal polars' (silences included, as the silver asset adds them), and gold
    meets the hand-computed figures."""
    from twin_pipeline.spark_jobs.oee_job import GOLD, INTERVALS, silver_and_gold

    samples = pl.concat([bronze(v).with_columns(pl.lit(v["name"]).alias("line_id")) for v in VECTORS])
    shift_ids = sorted({v["shift_id"] for v in VECTORS})
    extras = job_extras("unused", "delta-rs", shift_ids[:1])
    extras["shifts"] = [s for shift_id in shift_ids for s in job_extras("unused", "delta-rs", [shift_id])["shifts"]]
    extras = json.loads(json.dumps(extras))  # as the job receives them
    tables = silver_and_gold(spark, spark.createDataFrame(samples.to_arrow()), [], extras)
    by_spark = {t: pl.from_arrow(f.toArrow()).cast(dict(TABLES[t])) for t, f in tables.items()}
    for vector in VECTORS:
        window = CALENDAR.window(vector["shift_id"])
        mine = samples.filter(pl.col("line_id") == vector["name"])
        silences = [(g.line_id, g.start, g.end) for g in line_silences(mine, window)]
        intervals = state_intervals(mine, window, [vector["name"]], silences)
        counts = part_counts(mine, window)
        expected = {
            INTERVALS: intervals,
            "silver/part_counts": counts,
            GOLD: oee_rows(intervals, counts, mine, window),
        }
        for table, rows in expected.items():
            got = by_spark[table].filter(
                (pl.col("line_id") == vector["name"]) & (pl.col("shift_id") == window.shift_id)
            )
            assert_frames_equal(got, rows, table)
        [row] = by_spark[GOLD].filter(pl.col("line_id") == vector["name"]).to_dicts()
        for name, value in vector["expected"].items():
            assert row[name] == (None if value is None else pytest.approx(value, rel=1e-9, abs=1e-9)), name


# ---------------------------------------------------------------- a seeded range, from the raw zone


def _seed_and_build(folder: Path) -> dict[str, Any]:
    """Two slow lines seeded for DAYS days with the local variability, the polars medallion over the range
    (the local profile's assets), and a raw zone of it: both lines landed by edge-a, L2 also by edge-b."""
    from twin_pipeline.defs.bronze.assets import bronze_samples_asset
    from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
    from twin_pipeline.defs.silver.assets import silver_part_counts, silver_part_measurements, silver_state_intervals

    lake = folder / "lake"
    variability, vseed = variability_from_toml(ROOT / "edge_collector" / "local.toml")
    end = START + timedelta(days=DAYS)
    seed_history(
        lake,
        ["L1", "L2"],
        START,
        end,
        seed=21,
        variability=variability,
        variability_seed=vseed,
        design_speed_ppm=6.0,
        accumulator_period_s=60.0,
    )
    ids = [w.shift_id for w in CALENDAR.windows(START, end)]
    assert dg.materialize(
        [
            bronze_samples_asset,
            silver_state_intervals,
            silver_part_counts,
            silver_part_measurements,
            gold_fact_oee_shift,
        ],
        resources={"lake": LakeResource(root=str(lake))},
        tags={"dagster/asset_partition_range_start": ids[0], "dagster/asset_partition_range_end": ids[-1]},
    ).success
    raw = folder / "landing"
    lay_out_raw_zone(lake, raw, "edge-a", ids)
    lay_out_raw_zone(lake, raw, "edge-b", ids, lines=["L2"])  # the same rows of L2 from a second collector
    return {"lake": str(lake), "raw": str(raw), "shift_ids": ids}


@pytest.fixture(scope="module")
def seeded_range(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _seed_and_build(tmp_path_factory.mktemp("medallion"))


@pytest.fixture(scope="module")
def spark_run(seeded_range: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The range through the Spark engine's multi-asset (one Pipes run), into a lake of its own."""
    from twin_pipeline.defs.gold.oee import pipes_medallion

    lake = tmp_path_factory.mktemp("spark") / "lake"
    ids = seeded_range["shift_ids"]
    result = dg.materialize(
        [pipes_medallion("spark")],
        resources={"oee_job": LocalSparkOeeJob(lake=str(lake), raw=seeded_range["raw"])},
        tags={"dagster/asset_partition_range_start": ids[0], "dagster/asset_partition_range_end": ids[-1]},
    )
    assert result.success
    return lake, result


@pytest.mark.parametrize("table", list(ORDER))
def test_every_table_of_a_seeded_range_equals_polars(
    seeded_range: dict[str, Any], spark_run: tuple[Path, Any], table: str
) -> None:
    lake, _ = spark_run
    by_polars = pl.read_delta(str(Path(seeded_range["lake"]) / table)).select(list(TABLES[table]))
    by_spark = pl.read_delta(str(lake / table)).select(list(TABLES[table]))
    assert by_polars["shift_id"].n_unique() == len(seeded_range["shift_ids"])
    assert_frames_equal(by_spark, by_polars, table)


def test_the_range_is_one_run_with_each_shifts_figures_on_its_partition(
    seeded_range: dict[str, Any], spark_run: tuple[Path, Any]
) -> None:
    _, result = spark_run
    gold = pl.read_delta(str(Path(seeded_range["lake"]) / "gold" / "fact_oee_shift"))
    assert gold["produced"].sum() > 1000 and gold["downtime_fault_s"].sum() > 0  # the range is not trivial
    ids = seeded_range["shift_ids"]
    by_key: dict[str, dict[str, dict[str, Any]]] = {}
    for event in result.get_asset_materialization_events():
        m = event.materialization
        if m.partition:
            by_key.setdefault("/".join(m.asset_key.path), {})[m.partition] = {k: v.value for k, v in m.metadata.items()}
    assert set(by_key) == set(ORDER) and all(set(shifts) == set(ids) for shifts in by_key.values())
    bronze_rows = pl.read_delta(str(Path(seeded_range["lake"]) / "bronze" / "samples")).group_by("shift_id").len()
    for shift_id, n in bronze_rows.iter_rows():
        assert by_key["bronze/samples"][shift_id]["dagster/row_count"] == n
    # L2 came twice (edge-a and edge-b): its duplicates were removed, not counted
    assert sum(f["duplicates_removed"] for f in by_key["bronze/samples"].values()) > 0
    for row in gold.iter_rows(named=True):
        own = by_key["gold/fact_oee_shift"][row["shift_id"]]
        if row["availability"] is not None:
            assert own[f"availability/{row['line_id']}"] == pytest.approx(row["availability"], abs=1e-4)
    assert by_key["gold/fact_oee_shift"][ids[0]]["dagster/row_count"] == 2
    [run_level] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.partition == ids[-1] and e.materialization.asset_key.path == ["gold", "fact_oee_shift"]
    ]
    assert str(run_level.metadata["engine"].value).startswith("pyspark 4.")
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"oee_invariants": True, "performance_at_most_1": True}


# ---------------------------------------------------------------- the Spark-native table IO, as data


def test_the_spark_native_table_io_is_exactly_this() -> None:
    from twin_pipeline.spark_jobs import medallion_io as io

    shifts = ["2026-11-24-0600", "2026-11-24-1400"]
    lake, raw = "abfss://lake@acct.dfs.core.windows.net/twin", "abfss://landing@acct.dfs.core.windows.net"
    folders = json.loads(json.dumps(job_extras(lake, "delta", shifts, source_extras(raw_root=raw))))
    catalog = json.loads(json.dumps(job_extras(lake, "delta", shifts, source_extras(raw_root=raw), "twin", "plant")))
    where = "shift_id IN ('2026-11-24-0600', '2026-11-24-1400')"
    assert io.native_write(folders, "silver/part_counts", shifts) == {
        "format": "delta",
        "mode": "overwrite",
        "options": {"replaceWhere": where},
        "partitionBy": ["shift_id"],
        "save": f"{lake}/silver/part_counts",
    }
    assert io.native_write(catalog, "gold/fact_oee_shift", shifts) == {
        "format": "delta",
        "mode": "overwrite",
        "options": {"replaceWhere": where},
        "partitionBy": ["shift_id"],
        "saveAsTable": "twin.plant.fact_oee_shift",
    }
    assert io.native_read(folders, "bronze/samples", ["2026-11-23-2200"]) == {
        "format": "delta",
        "load": f"{lake}/bronze/samples",
        "where": "shift_id IN ('2026-11-23-2200')",
    }
    assert io.native_read(catalog, "bronze/samples", ["2026-11-23-2200"]) == {
        "table": "twin.plant.samples",
        "where": "shift_id IN ('2026-11-23-2200')",
    }
    assert io.native_raw(folders, "raw_samples", shifts) == {
        "parquet": f"{raw}/raw/raw_samples",
        "where": where,
        "options": {"basePath": f"{raw}/raw/raw_samples"},
    }
    assert io.table_location(catalog, "gold/fact_oee_shift") == "twin.plant.fact_oee_shift"
    assert io.table_location(folders, "gold/fact_oee_shift") == f"{lake}/gold/fact_oee_shift"
    with pytest.raises(ValueError, match="cannot be quoted"):
        io.in_list("shift_id", ["x' OR 1=1 --"])


def test_a_line_is_in_a_gap_only_where_every_edge_of_it_was() -> None:
    """`line_gaps`, the several-edges rule (as `edge_source.EdgeSource.gaps`), by hand (epoch microseconds;
    shifts S = [0, 100), T = [100, 200))."""
    from twin_pipeline.spark_jobs.medallion_silver import line_gaps

    def gap(edge: str, line: str, before: int, after: int | None, seq: int) -> dict[str, Any]:
        return {"edge_id": edge, "session_id": "s", "seq": seq, "line_id": line, "before_us": before, "after_us": after}

    windows = [("S", 0, 100), ("T", 100, 200)]
    rows = [
        gap("a", "L1", 10, 20, 1),  # L1: edge a alone -> exactly its gaps, clipped to each shift
        gap("a", "L1", 90, 130, 2),
        gap("a", "L2", 10, 40, 3),  # L2: a and b deliver it: only where both were out
        gap("b", "L2", 30, 60, 1),
        gap("b", "L2", 150, None, 2),  # b open-ended from 150, but a is not out then: no gap
    ]
    subscribers = {("a", "L1"), ("a", "L2"), ("b", "L2")}
    assert sorted(line_gaps(rows, subscribers, windows)) == [
        ("S", "L1", 10, 20),
        ("S", "L1", 90, 100),
        ("S", "L2", 30, 40),
        ("T", "L1", 100, 130),
    ]
    # a subscribed only L1 and recorded no gap of L2: b's open outage of L2 runs to the shift end
    only_b = [r for r in rows if r["line_id"] != "L2" or r["edge_id"] == "b"]
    assert ("T", "L2", 150, 200) in line_gaps(only_b, {("a", "L1"), ("b", "L2")}, windows)


def test_under_the_spark_engine_one_multi_asset_computes_the_medallion(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same five keys (and their dependencies), now one op: the polars bronze and silver assets are left out."""
    from twin_pipeline.definitions import defs

    monkeypatch.setenv("TWIN_OEE_ENGINE", "spark")
    loaded = defs()
    graph = loaded.resolve_asset_graph()
    ops = {loaded.resolve_assets_def(dg.AssetKey(t.split("/"))).node_def.name for t in ORDER}
    assert ops == {"spark_medallion"}
    for table in ORDER:
        assert "pyspark" in graph.get(dg.AssetKey(table.split("/"))).kinds, table
    silver = graph.get(dg.AssetKey(["silver", "part_counts"]))
    assert [k.to_user_string() for k in silver.parent_keys] == ["bronze/samples"]
