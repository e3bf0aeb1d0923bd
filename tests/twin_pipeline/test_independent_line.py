"""A line this project did not write, end to end: node-opcua (an independent OPC UA stack) serves a
CODESYS-style line with only the seven core PackTags, SignAndEncrypt and a user; the collector reads it by
configuration alone (its default tag map: the line lacks all but seven); bronze, silver, gold and every
check run for the shift, and gold must be final and equal the figures computed by hand from the script."""

from __future__ import annotations

import itertools
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from edge_collector.collector import Collector
from tests.edge_collector.conftest import running, settle
from tests.support.node_opcua_line import EXECUTE, FAULT, OPERATOR_STOP, node_opcua_line, scripted_shift
from twin_pipeline.defs.bronze import checks as bronze_checks
from twin_pipeline.defs.bronze.assets import bronze_samples_asset
from twin_pipeline.defs.gold import checks as gold_checks
from twin_pipeline.defs.gold.assets import gold_fact_downtime
from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.defs.silver import checks as silver_checks
from twin_pipeline.defs.silver.assets import silver_part_counts, silver_state_intervals
from twin_pipeline.resources.lake import LakeResource

SHIFT = "2026-11-24-0600"
WINDOW = CALENDAR.window(SHIFT)
CHECKS = [
    c
    for module in (bronze_checks, silver_checks, gold_checks)
    for c in vars(module).values()
    if isinstance(c, dg.AssetChecksDefinition)
]


def _overlap(a: float, b: float, breaks: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in breaks)


@pytest.fixture(scope="module")
def independent_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    """The node-opcua line's scripted shift, collected into a lake."""
    import asyncio

    tmp = tmp_path_factory.mktemp("independent")
    timeline, expected = scripted_shift(WINDOW.start, hours=WINDOW.duration_s / 3600, same_stamp=True)

    async def collect() -> Path:
        with node_opcua_line(tmp / "line", timeline) as line:
            config = line.collector_config(tmp)
            async with running(Collector(config, environ=line.environ()), timeout=60):
                await line.play_async()
                await settle(1.0)
            return config.lake()

    return asyncio.run(collect()), timeline, expected


def test_gold_of_an_independent_codesys_line_is_final_and_right(independent_lake: tuple) -> None:
    lake, timeline, expected = independent_lake
    result = dg.materialize(
        [
            bronze_samples_asset,
            silver_state_intervals,
            silver_part_counts,
            gold_fact_oee_shift,
            gold_fact_downtime,
            *CHECKS,
        ],
        partition_key=SHIFT,
        resources={"lake": LakeResource(root=str(lake))},
        raise_on_error=False,
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert result.success
    # what OEE needs is there; the simulator's own tags are only a warning; no silence invented
    assert checks["bronze_complete"].passed, checks["bronze_complete"].metadata
    assert not checks["bronze_optional_tags"].passed
    assert checks["bronze_optional_tags"].severity == dg.AssetCheckSeverity.WARN
    # ... and judged by the collector's manifest: the server lacks them (not "subscribed, but silent")
    optional = checks["bronze_optional_tags"].metadata["missing_tags"].value
    assert "Sim." in optional and "(missing" in optional and "subscribed, but" not in optional
    assert checks["bronze_no_gaps"].passed, checks["bronze_no_gaps"].metadata
    assert all(checks[n].passed for n in ("bronze_schema", "bronze_no_duplicates", "bronze_matches_edge"))

    # the figures by hand, from the script: seconds after the shift start
    start = WINDOW.start
    breaks = [((s - start).total_seconds(), (e - start).total_seconds()) for s, e in WINDOW.breaks]
    changes = [(s.t_s, int(s.set["Status.StateCurrent"])) for s in timeline.steps if "Status.StateCurrent" in s.set]
    end_s = WINDOW.duration_s
    execute_s = [(a, b) for (a, state), (b, _) in itertools.pairwise([*changes, (end_s, -1)]) if state == EXECUTE]
    apt = sum(b - a - _overlap(a, b, breaks) for a, b in execute_s)
    counts = {"Admin.ProdProcessedCount": 0, "Admin.ProdDefectiveCount": 0}
    made = dict.fromkeys(counts, 0)
    for step in timeline.steps:
        for tag in counts:
            if tag in step.set:
                inc, counts[tag] = int(step.set[tag]) - counts[tag], int(step.set[tag])
                if step.t_s < end_s and not any(s <= step.t_s < e for s, e in breaks):
                    made[tag] += inc
    produced, reject = made["Admin.ProdProcessedCount"], made["Admin.ProdDefectiveCount"]
    pbt = WINDOW.planned_busy_time_s
    ict = 60.0 / expected.design_speed

    [row] = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).to_dicts()
    assert row["provisional"] is False, row["provisional_reason"]
    assert row["actual_production_time_s"] == pytest.approx(apt, abs=1e-3)
    assert row["produced"] == produced and row["reject"] == reject
    assert row["ideal_cycle_time_s"] == pytest.approx(ict)
    assert row["availability"] == pytest.approx(apt / pbt, rel=1e-6)
    assert row["performance"] == pytest.approx(ict * produced / apt, rel=1e-6)
    assert row["quality"] == pytest.approx((produced - reject) / produced, rel=1e-9)
    assert row["oee"] == pytest.approx(apt / pbt * ict * produced / apt * (produced - reject) / produced, rel=1e-6)
    # both stops, with their reasons and lengths as scripted
    stops = pl.read_delta(str(lake / "gold" / "fact_downtime")).sort("stop_start")
    assert stops["reason_code"].to_list() == [OPERATOR_STOP, FAULT]
    assert stops["duration_s"].to_list() == pytest.approx([s for _, s, _ in expected.stops], abs=1e-3)
    assert [s for s, _, _ in expected.stops] == stops["stop_start"].to_list()
