"""Issue 14: a subscription that delivers neither data nor keep-alive while the connection stays up
is an outage of its lines: a `subscription_silent` gap from the last publish response to the next.

The fault is forced, not waited for: the real PLC server's subscription stops publishing (its
`publish_results` answers "nothing to send" while paused, so it sends neither data nor keep-alives,
and keeps its changes queued), with the session, the secure channel and ServerState reads healthy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from edge_collector.collector import Collector
from edge_collector.silence import REASON, silent_after_s
from plc.server import PlcServer
from tests.conftest import T0
from tests.edge_collector.conftest import LAB_ENV, lab_config, read_table, running
from tests.edge_collector.test_collector import step_until
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.edge_source import LocalEdges, plc_gaps

EPS = timedelta(milliseconds=5)  # two clock readings (monotonic -> wall) of the same instant


class PublishGate:
    """Pauses the publishing of every subscription the server holds now (data and keep-alives alike)."""

    def __init__(self, plc: PlcServer) -> None:
        self.paused = False
        subs = list(plc.server.iserver.subscription_service.subscriptions.values())
        assert subs, "no subscription to pause"
        for sub in subs:
            sub.publish_results = self._gated(sub.publish_results)

    def _gated(self, publish: Callable[..., Any]) -> Callable[..., Any]:
        async def publish_results(requestdata: Any = None) -> bool:
            if self.paused:
                return False  # as with nothing to send: the changes stay queued, no keep-alive goes out
            return bool(await publish(requestdata))

        return publish_results


async def until(predicate: Callable[[], bool], limit: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"not within {limit:.1f} s")
        await asyncio.sleep(0.02)


@pytest.mark.timeout(90)
async def test_a_silent_subscription_is_a_gap_until_data_or_a_keepalive_arrives(start_plc: Any, tmp_path: Path) -> None:
    async with start_plc() as plc:
        config = lab_config(plc, tmp_path)  # 20 ms publishing x 20: a keep-alive every 0.4 s when idle
        lines = config.subscription.lines
        async with running(Collector(config, environ=LAB_ENV)) as collector:
            await step_until(plc, collector, 20)
            assert collector.silence is not None
            bound = silent_after_s(collector.silence.sub.parameters)
            keepalive_s = 0.02 * 20
            gate = PublishGate(plc)
            book = collector.gaps

            def silent_gaps_open() -> bool:
                return all(
                    ln in book.gaps and book.gaps[ln].row["reason"] == REASON and not book.gaps[ln].closed
                    for ln in lines
                )

            # 1. The PLC does not change: after the pause only a keep-alive can end the silence.
            received = collector.received
            paused_1 = datetime.now(UTC)
            gate.paused = True
            await until(silent_gaps_open, limit=bound + 5)
            detected_1 = datetime.now(UTC)
            assert collector.connected.is_set()  # the session is healthy: not a connection loss
            resumed_1 = datetime.now(UTC)
            gate.paused = False
            await until(lambda: all(book.gaps[ln].closed for ln in lines), limit=5)
            assert collector.received == received  # ended by a keep-alive, not by data
            await plc.step(1.0)  # the lines' next samples write the gaps (their source_ts_after)
            await until(lambda: collector.gaps_written == len(lines), limit=10)

            # 2. The PLC runs during the pause: the server keeps the changes and sends them after it.
            processed_before = plc.line("L1").processed
            paused_2 = datetime.now(UTC)
            gate.paused = True
            await plc.step(5.0)
            await until(silent_gaps_open, limit=bound + 5)
            resumed_2 = datetime.now(UTC)
            gate.paused = False
            await until(lambda: collector.gaps_written == 2 * len(lines), limit=10)
            await step_until(plc, collector, 10)
            processed = plc.line("L1").processed
            assert collector.silence.silences == 2
            assert collector.metrics_snapshot()["subscription_silences"] == 2  # on /metrics

    assert processed > processed_before  # the pause did hide changes
    gaps = read_table(config.lake(), "gaps").sort("gap_start", "line_id")
    assert gaps.height == 2 * len(lines) and set(gaps["reason"]) == {REASON}, gaps
    first, second = gaps.head(len(lines)), gaps.tail(len(lines))
    for row in first.iter_rows(named=True):
        # from the last publish response before the pause (a keep-alive at most 0.4 s earlier) ...
        assert paused_1 - timedelta(seconds=keepalive_s + 1.0) <= row["gap_start"] <= paused_1 + EPS, row
        # declared silent once no publish response came for the bound (2 keep-alive periods, at least 2 s)
        assert bound <= (detected_1 - row["gap_start"]).total_seconds() <= bound + 3.0, row
        # ... to the first keep-alive after it (one keep-alive period, plus a busy loop's delay)
        assert resumed_1 - EPS <= row["gap_end"] <= resumed_1 + timedelta(seconds=keepalive_s + 1.5), row
        assert row["source_ts_before"] < row["source_ts_after"], row
    for row in second.iter_rows(named=True):
        assert paused_2 - timedelta(seconds=keepalive_s + 1.0) <= row["gap_start"] <= paused_2 + EPS, row
        assert resumed_2 - EPS <= row["gap_end"] <= resumed_2 + timedelta(seconds=2.0), row  # the held data
        assert row["source_ts_before"] < row["source_ts_after"], row

    raw = read_table(config.lake(), "raw_samples")
    counts = raw.filter((pl.col("line_id") == "L1") & (pl.col("tag") == "Admin.ProdProcessedCount"))
    assert set(range(processed + 1)) <= {int(v) for v in counts["value"]}  # nothing lost: it was held, then sent

    # The pipeline reads them as outages of the lines, in PLC time (edge_source gaps/plc_gaps take every reason).
    window = ShiftWindow("test", "test", T0, T0 + timedelta(days=1))
    outages = set(plc_gaps(LocalEdges({"edge": config.lake()}).gaps(window.start, window.end), window))
    for row in gaps.iter_rows(named=True):
        assert (row["line_id"], row["source_ts_before"], row["source_ts_after"]) in outages
