"""Defect 2: an outage still open when the collector stops is a gap row (ended at the stop), continued at the
next start, so the union of the line's gap rows covers the whole outage; while the server stays down the
log holds one line, not a traceback a second."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from edge_collector.collector import Collector
from tests.conftest import T0
from tests.edge_collector.conftest import LAB_ENV, lab_config, read_table, running, settle


async def test_an_outage_open_at_stop_is_a_gap_continued_at_the_next_start(
    start_plc: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from plc.server import PlcServer
    from plc.sim_clock import SimClock

    caplog.set_level(logging.INFO)
    async with start_plc(lines=None) as plc:
        config = lab_config(plc, tmp_path, subscription={"lines": ["L1"]})
        async with running(Collector(config, environ=LAB_ENV)) as collector:
            await plc.step(10)
            await settle(1.0)
            await plc.stop()
            down = datetime.now(UTC)
            for _ in range(50):
                await asyncio.sleep(0.1)
                if not collector.connected.is_set():
                    break
            assert not collector.connected.is_set()
            await asyncio.sleep(4.0)  # asyncua's publish loop fails every second meanwhile
            stopping = datetime.now(UTC)
        stopped = datetime.now(UTC)
        plc.server.bserver = None  # already stopped
        gaps = read_table(config.lake(), "gaps")
        assert gaps.height == 1, gaps  # before the fix: no row at all
        first = gaps.row(0, named=True)
        assert first["reason"] in ("disconnected", "session_lost") and first["source_ts_after"] is None
        assert abs((first["gap_start"] - down).total_seconds()) < 2.0
        assert stopping <= first["gap_end"] <= stopped
        crashed = [r for r in caplog.records if "Publish iteration crashed" in r.getMessage()]
        assert len(crashed) <= 1 and all(r.exc_info is None for r in crashed), crashed
        assert not any(r.exc_info for r in caplog.records if r.name.startswith("asyncua")), "a traceback was logged"

        # the server is back, the collector starts again: its gap continues where the last one ended
        restarted = PlcServer(
            plc.params, SimClock(start=T0 + timedelta(minutes=5), step_mode=True), plc.seed, plc.options
        )
        await restarted.start()
        try:
            async with running(Collector(config, environ=LAB_ENV)):
                await restarted.step(10)
                await settle(1.0)
        finally:
            await restarted.stop()
    gaps = read_table(config.lake(), "gaps").sort("gap_start")
    assert gaps.height >= 2, gaps
    second = gaps.row(1, named=True)
    assert second["reason"] == "collector_down" and second["gap_start"] == first["gap_end"]  # continuous coverage
    assert second["source_ts_after"] is not None and second["gap_end"] > second["gap_start"]
    raw = read_table(config.lake(), "raw_samples")
    assert raw.filter(pl.col("source_ts") > T0 + timedelta(minutes=5)).height > 0  # collecting again
