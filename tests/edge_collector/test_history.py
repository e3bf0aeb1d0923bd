"""History seeding: seeded edge data has the edge contract, is what the PLC server and the collector
would have recorded, carries the variability engine's ground truth, and the pipeline's gold OEE
over a seeded shift reconciles with the line models' own counters and state accumulators."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable

from edge_collector.collector import Collector
from edge_collector.lake import LOCK_NAME, WriterLock, WriterLocked
from edge_collector.manifest import expected_tags
from edge_collector.schemas import INJECTED_EVENTS, RAW_SAMPLES, SUBSCRIPTIONS, edge_table_path
from edge_collector.variability.engine import VariabilityConfig
from edge_collector.variability.history import SeedStats, seed_history, session_id_for
from plc.plant_config import load_lines
from plc.server import PlcServer, ServerOptions
from plc.sim_clock import SimClock
from plc.tagmap import TAGS
from plc.tagmap import PackMLState as S
from tests.conftest import T0, free_port
from tests.edge_collector.conftest import LAB_ENV, clock_seen, lab_config, read_table, running

SHIFT = "2026-11-24-0600"  # T0 = 06:00 Berlin
SHIFT_END = T0 + timedelta(hours=8)
#: Breakdowns every ~2 h of uptime, a quality error big enough for rejects, a varying feed on L1.
VARIABILITY = VariabilityConfig.model_validate(
    {
        "default": {
            "faults": {
                "time_to_failure": {"kind": "weibull", "shape": 1.5, "scale": 7200.0},
                "repair_time": {"kind": "lognormal", "median": 600.0, "sigma": 0.5},
                "fault_code": {"kind": "categorical", "weights": {"101": 5.0, "205": 3.0}},
            },
            "quality_error": {"interval_s": 900.0, "distribution": {"kind": "normal", "mean": 0.035, "sd": 0.01}},
        },
        "lines": {
            "L1": {
                "feed_rate": {"interval_s": 1800.0, "distribution": {"kind": "uniform", "low": 100.0, "high": 125.0}}
            }
        },
    }
)


def as_polars_schema(schema: object) -> pl.Schema:
    return pl.from_arrow(schema.empty_table()).schema


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SeedStats]:
    """One early shift of L1 and L2 (8 h, PLC started at the shift start) with the variability engine."""
    lake = tmp_path_factory.mktemp("seeded") / "lake"
    progress: list[float] = []
    stats = seed_history(
        lake,
        ["L1", "L2"],
        T0,
        SHIFT_END,
        seed=11,
        variability=VARIABILITY,
        variability_seed=3,
        progress=lambda s: progress.append(s.simulated_s),
    )
    assert progress == [3600.0 * h for h in range(1, 9)]  # one batch (commit) per simulated hour
    return lake, stats


def test_seeded_tables_have_the_edge_contract(seeded: tuple[Path, SeedStats]) -> None:
    lake, stats = seeded
    raw_path = edge_table_path(lake, "raw_samples")
    assert DeltaTable(str(raw_path)).metadata().partition_columns == ["day"]
    raw = read_table(lake, "raw_samples")
    assert raw.schema == as_polars_schema(RAW_SAMPLES)
    assert raw.height == stats.rows > 100_000
    assert raw["session_id"].unique().to_list() == [stats.session_id] == [session_id_for(11, T0)]
    assert stats.session_id.startswith("seed-")
    assert set(raw["tag"].unique()) == {t.path for t in TAGS.subscribed_line_tags()}
    assert (raw["source_ts"] == raw["server_ts"]).all() and (raw["source_ts"] == raw["received_ts"]).all()
    assert raw["value_text"].null_count() == raw.height and raw["value"].null_count() == 0
    # Good, except the initial value of inputs the PLC program never wrote, as the collector stores it
    uncertain = raw.filter(pl.col("status_code") != 0)
    assert set(uncertain["status_code"]) == {0x40920000} and (uncertain["source_ts"] == T0).all()
    assert raw.filter(pl.col("tag") == "Sim.OutfeedBlocked")["value"].to_list() == [0.0, 0.0]  # boolean as 0/1
    assert (raw["day"] == raw["source_ts"].dt.strftime("%Y-%m-%d")).all()
    assert raw.select("line_id", "tag", "source_ts").is_duplicated().sum() == 0
    for (_, _), rows in raw.group_by(["session_id", "line_id"]):
        assert rows["seq"].sort().diff().drop_nulls().min() == 1
        # seq follows the PLC's order of changes per tag
        assert rows.sort("seq").group_by("tag").agg(pl.col("source_ts").diff().drop_nulls().min())[
            "source_ts"
        ].min() > timedelta(0)
    events = read_table(lake, "injected_events")
    assert events.schema == as_polars_schema(INJECTED_EVENTS) and events.height == stats.events
    # the seeded session's subscriptions manifest: the tags it wrote, in force from the start, seq 1..n per line
    manifest = read_table(lake, "subscriptions")
    assert manifest.schema == as_polars_schema(SUBSCRIPTIONS)
    assert set(manifest["session_id"]) == {stats.session_id} and (manifest["since_ts"] == T0).all()
    assert set(manifest["status"]) == {"subscribed"}
    for line in ("L1", "L2"):
        assert expected_tags(manifest, line, T0 + timedelta(seconds=1)) == set(raw["tag"].unique())
        assert manifest.filter(pl.col("line_id") == line)["seq"].sort().to_list() == list(
            range(1, len(manifest) // 2 + 1)
        )
        assert raw.filter(pl.col("line_id") == line)["seq"].min() == len(manifest) // 2 + 1
    assert set(events["session_id"]) == {stats.session_id} and set(events["seed"]) == {3}


def test_counters_and_state_times_equal_the_line_models(seeded: tuple[Path, SeedStats]) -> None:
    lake, stats = seeded
    raw = read_table(lake, "raw_samples")
    events = read_table(lake, "injected_events")
    for line_id in ("L1", "L2"):
        truth = stats.truth[line_id]
        ours = raw.filter(pl.col("line_id") == line_id)
        counts = ours.filter(pl.col("tag") == "Admin.ProdProcessedCount").sort("source_ts")["value"]
        assert counts.to_list() == [float(i) for i in range(truth.processed + 1)]  # every part, none twice
        rejects = ours.filter(pl.col("tag") == "Admin.ProdDefectiveCount")["value"].max()
        assert rejects == truth.defective > 0
        assert truth.processed > 30_000
        last = ours.filter(pl.col("tag") == "Admin.StateTime.Execute").sort("source_ts")["value"][-1]
        assert last == pytest.approx(truth.state_time_s["Execute"], abs=1.0)  # published every second
        # every injected fault is one Aborting entry of the line, and the rows are the ground truth
        mine = events.filter(pl.col("line_id") == line_id)
        starts = mine.filter(pl.col("kind") == "fault_start")
        aborting = ours.filter((pl.col("tag") == "Status.StateCurrent") & (pl.col("value") == S.Aborting))
        assert starts.height == aborting.height >= 1
        assert (aborting.sort("source_ts")["source_ts"] - starts.sort("event_ts")["event_ts"]).abs().max() <= timedelta(
            microseconds=1
        )
        assert mine.filter(pl.col("kind") == "fault_end").height >= starts.height - 1
        assert mine.filter(pl.col("kind") == "quality_shift").height == 8 * 4 + 1  # every 15 min, from the start
    feeds = raw.filter(pl.col("tag") == "Sim.FeedRate").sort("line_id", "source_ts")
    # the engine's writes are samples (L1: the initial feed, then one per 30 min); L2 keeps its initial feed
    assert feeds.filter(pl.col("line_id") == "L1").height == 1 + 8 * 2 + 1
    assert feeds.filter(pl.col("line_id") == "L2")["value"].to_list() == [90.0 * 0.95]


def test_gold_oee_over_a_seeded_shift_reconciles_with_the_models(
    seeded: tuple[Path, SeedStats], tmp_path: Path
) -> None:
    from twin_pipeline.defs.bronze.assets import bronze_samples_asset
    from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
    from twin_pipeline.defs.silver.assets import silver_part_counts, silver_state_intervals
    from twin_pipeline.resources.lake import LakeResource

    lake, stats = seeded
    result = dg.materialize(
        [bronze_samples_asset, silver_state_intervals, silver_part_counts, gold_fact_oee_shift],
        partition_key=SHIFT,
        resources={"lake": LakeResource(root=str(lake))},
    )
    assert result.success
    intervals = pl.read_delta(str(lake / "silver" / "state_intervals"))
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("line_id")
    assert gold["line_id"].to_list() == ["L1", "L2"]
    for row in gold.iter_rows(named=True):
        truth = stats.truth[row["line_id"]]
        # time in every PackML state, breaks included, equals the model's accumulators (to the 1 us stamps)
        mine = intervals.filter(pl.col("line_id") == row["line_id"])
        for state, seconds in truth.state_time_s.items():
            assert mine.filter(pl.col("state_name") == state)["duration_s"].sum() == pytest.approx(seconds, abs=1e-3)
        assert row["actual_production_time_s"] + row["production_in_breaks_s"] == pytest.approx(
            truth.state_time_s["Execute"], abs=1e-3
        )
        assert row["produced"] + row["produced_in_breaks"] == truth.processed
        assert 0 < row["reject"] <= truth.defective and row["good"] + row["reject"] == row["produced"]
        assert row["unknown_time_s"] < 1e-3 and not row["provisional"]
        assert row["ideal_cycle_time_s"] == {"L1": 0.5, "L2": 60 / 90}[row["line_id"]]
        assert 0 < row["availability"] < 1 and 0 < row["quality"] < 1
        assert row["oee"] == pytest.approx(row["availability"] * row["performance"] * row["quality"], rel=1e-12)
    l2 = gold.row(1, named=True)
    assert l2["performance"] == pytest.approx(0.95, abs=0.002)  # fed at 95 % of design speed


async def _record_through_the_server(tmp: Path, minutes: int) -> Path:
    """The same two lines recorded the production way: plc-sim in step mode and the edge collector."""
    options = ServerOptions(port=free_port(), insecure=True, pki_dir=tmp / "pki")
    async with PlcServer(load_lines(["L1", "L2"]), SimClock(start=T0, step_mode=True), 5, options) as plc:
        config = lab_config(plc, tmp)
        async with running(Collector(config, environ=LAB_ENV)) as collector:
            for _ in range(minutes * 6):
                await plc.step(10.0)
                await asyncio.sleep(0.005)
            await clock_seen(collector, plc)
            await collector.datalogger.flush()
    return config.lake()


def test_seeded_rows_are_what_the_server_and_collector_record(tmp_path: Path) -> None:
    recorded = read_table(asyncio.run(_record_through_the_server(tmp_path / "real", minutes=10)), "raw_samples")
    seed_history(tmp_path / "seeded", ["L1", "L2"], T0, T0 + timedelta(minutes=10), seed=5)
    seeded = read_table(tmp_path / "seeded", "raw_samples")
    key = ["line_id", "tag", "source_ts", "value", "status_code"]
    later = pl.col("source_ts") > T0 + timedelta(microseconds=10)
    # identical after the PLC's start instant; at it, the collector (subscribing after the PLC started)
    # only saw each node's value as of its subscription, while seeding keeps every change
    assert recorded.filter(later).select(key).sort(key).equals(seeded.filter(later).select(key).sort(key))
    assert recorded.filter(later).height > 6000
    assert (
        recorded.filter(~later)
        .select("line_id", "tag")
        .sort("line_id", "tag")
        .equals(seeded.filter(~later).select("line_id", "tag").unique().sort("line_id", "tag"))
    )


def test_rerun_skips_committed_batches_and_extends_deterministically(tmp_path: Path) -> None:
    first = seed_history(tmp_path / "a", ["L2"], T0, T0 + timedelta(hours=1), seed=2, batch_s=900.0)
    again = seed_history(tmp_path / "a", ["L2"], T0, T0 + timedelta(hours=1), seed=2, batch_s=900.0)
    assert (first.batches, first.batches_skipped, again.rows, again.batches_skipped) == (4, 0, 0, 4)
    extended = seed_history(tmp_path / "a", ["L2"], T0, T0 + timedelta(hours=2), seed=2, batch_s=900.0)
    assert extended.batches_skipped == 4 and extended.rows > 0
    other_line = seed_history(tmp_path / "a", ["L1"], T0, T0 + timedelta(hours=1), seed=2, batch_s=900.0)
    assert other_line.session_id == first.session_id and other_line.batches_skipped == 0 and other_line.rows > 0
    seed_history(tmp_path / "b", ["L2"], T0, T0 + timedelta(hours=2), seed=2)  # one go, other batch size
    key = ["line_id", "tag", "source_ts", "value", "seq"]
    assert (
        read_table(tmp_path / "a", "raw_samples")
        .filter(pl.col("line_id") == "L2")
        .select(key)
        .sort(key)
        .equals(read_table(tmp_path / "b", "raw_samples").select(key).sort(key))
    )


def test_refuses_a_lake_a_collector_is_writing(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "lake" / "edge" / LOCK_NAME)
    lock.acquire("a collector")
    try:
        with pytest.raises(WriterLocked):
            seed_history(tmp_path / "lake", ["L1"], T0, T0 + timedelta(minutes=5))
    finally:
        lock.release()
    with pytest.raises(ValueError, match="timezone-aware"):
        seed_history(tmp_path / "lake", ["L1"], T0.replace(tzinfo=None), SHIFT_END)
    with pytest.raises(ValueError, match="after start"):
        seed_history(tmp_path / "lake", ["L1"], SHIFT_END, T0)


def test_gold_oee_exists_for_every_shift_of_a_continuously_running_line(tmp_path: Path) -> None:
    """The design speed is published once, at PLC start, and a line can run a whole shift without a
    state change: OEE of the third shift on still needs both (carried forward shift by shift)."""
    from twin_pipeline.defs.bronze.assets import bronze_samples_asset
    from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
    from twin_pipeline.defs.silver.assets import silver_part_counts, silver_state_intervals
    from twin_pipeline.resources.lake import LakeResource

    lake = tmp_path / "lake"
    seed_history(lake, ["L1", "L2"], T0, T0 + timedelta(hours=32), seed=5)  # no variability: no state changes
    assets = [bronze_samples_asset, silver_state_intervals, silver_part_counts, gold_fact_oee_shift]
    shifts = ["2026-11-24-0600", "2026-11-24-1400", "2026-11-24-2200", "2026-11-25-0600"]
    resources = {"lake": LakeResource(root=str(lake))}
    for shift in shifts:  # one run per shift, as the schedule does it
        assert dg.materialize(assets, partition_key=shift, resources=resources).success
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("shift_id", "line_id")
    assert sorted(gold["shift_id"].unique()) == shifts
    assert gold["oee"].null_count() == 0 and gold["ideal_cycle_time_s"].null_count() == 0
    assert gold["unknown_time_s"].max() < 1e-3 and not gold["provisional"].any()  # 1 us at the PLC start
    later = gold.filter(pl.col("shift_id") != shifts[0])
    assert (later["performance"] - 0.95).abs().max() < 0.01  # fed at 95 % of design speed, all shift long
