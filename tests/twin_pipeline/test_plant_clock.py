"""Defect 5 of issue 14: `twin up --speed K` (K > 1) ran the plant clock ahead of the wall clock; after
24/K hours every sample was quarantined as `absurd_timestamp` and the partitions stopped at the wall
clock. The live plant clock now starts behind the wall clock and catches up with it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from edge_collector.local_twin import LiveLine
from edge_collector.schemas import edge_table_path
from plc.sim_clock import SimClock
from tests.conftest import free_port
from twin_pipeline.launcher import plant_clock

NOW = datetime(2026, 12, 7, 18, 30, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("speed", [2.0, 60.0, 600.0, 3600.0])
def test_an_accelerated_plant_clock_never_passes_the_wall_clock(speed: float) -> None:
    plan = plant_clock.plan(speed, timedelta(hours=24), NOW, newest=None)
    assert plan.start == NOW - timedelta(hours=24)
    wall = [NOW.timestamp()]
    clock = SimClock(start=plan.start, speed=speed, wall=lambda: wall[0])
    catch_up = plan.catches_up_at
    assert catch_up is not None
    for step in range(2000):  # two catch-ups long, in 2000 steps
        wall[0] = NOW.timestamp() + step * 2 * (catch_up - NOW).total_seconds() / 2000
        assert clock.now() <= wall[0] + 1e-6
    assert clock.caught_up() and clock.current_speed() == 1.0
    assert f"{speed:g}x" in plan.describe() and "reaches the wall clock" in plan.describe()


def test_the_plant_clock_starts_after_the_newest_data_and_real_time_stays_real_time() -> None:
    newest = NOW - timedelta(hours=2)
    assert plant_clock.plan(60, timedelta(hours=24), NOW, newest).start == newest + timedelta(seconds=1)
    caught_up = plant_clock.plan(60, timedelta(hours=24), NOW, NOW - timedelta(seconds=10))
    assert caught_up.start is None and caught_up.speed == 1.0  # nothing left to catch up: real time
    assert plant_clock.plan(1, timedelta(hours=24), NOW, None).start is None


def test_the_newest_plant_time_is_the_seeded_end(tmp_path: Path) -> None:
    assert plant_clock.newest_plant_time(tmp_path) is None
    (tmp_path / "history.json").write_text(json.dumps({"start": "2026-12-04T18:00:00+00:00", "end": NOW.isoformat()}))
    assert plant_clock.newest_plant_time(tmp_path) == NOW


def test_a_live_line_at_600x_stays_behind_the_wall_clock_and_nothing_is_quarantined(tmp_path: Path) -> None:
    """The mechanism end to end in seconds: plc-sim and edge-collector as `twin up` runs them, the plant
    clock 90 simulated minutes behind at 600x (caught up after 9 s), then real time."""
    now = datetime.now(UTC)
    plan = plant_clock.plan(600, timedelta(minutes=90), now, None)
    config = tmp_path / "collector.toml"
    config.write_text((ROOT / "edge_collector" / "local.toml").read_text() + "\n[metrics]\nport = 0\n")
    line = LiveLine(tmp_path, port=free_port(), speed=plan.speed, config_path=config, start=plan.start)
    line.start()
    try:
        deadline = time.monotonic() + 90
        raw = edge_table_path(tmp_path / "lake", "raw_samples")
        while time.monotonic() < deadline:  # until the collector wrote plant time past the catch-up
            time.sleep(2)
            assert line.alive()
            if (raw / "_delta_log").exists():
                newest = pl.read_delta(str(raw))["source_ts"].max()
                if newest is not None and newest > plan.catches_up_at:  # type: ignore[operator]  # a datetime
                    break
        else:
            pytest.fail("the plant clock did not reach the wall clock within 90 s")
    finally:
        codes = line.stop()
    assert codes == [0, 0]
    samples = pl.read_delta(str(raw))
    # the plant clock stood still until the collector subscribed: its first plant minute was recorded
    assert samples["source_ts"].min() < plan.start + timedelta(minutes=1)  # type: ignore[operator]  # start is set
    assert (samples["source_ts"] <= samples["received_ts"]).all()  # never ahead of the wall clock
    quarantine = edge_table_path(tmp_path / "lake", "quarantine")
    assert not (quarantine / "_delta_log").exists() or pl.read_delta(str(quarantine)).height == 0
