"""The variability engine's ground truth (`injected_events`) in the terms gold reports."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from edge_collector.schemas import edge_table_path
from twin_pipeline.delta_io import scan_edge
from twin_pipeline.shift_calendar import ShiftWindow


def injected_fault_seconds(lake: Path, window: ShiftWindow, lookback_s: float = 86_400.0) -> dict[str, tuple[float, int]]:
    """Per line: injected fault time inside the window (fault_start -> fault_end, clipped) and fault count."""
    from datetime import timedelta

    events = scan_edge(edge_table_path(lake, "injected_events"), "injected_events", "event_ts",
                       window.start - timedelta(seconds=lookback_s), window.end).filter(
        pl.col("kind").is_in(["fault_start", "fault_end"])).collect().sort("line_id", "event_ts", "seq")
    result: dict[str, tuple[float, int]] = {}
    for (line_id,), rows in events.group_by(["line_id"]):
        seconds, faults, started = 0.0, 0, None
        for r in rows.sort("event_ts", "seq").iter_rows(named=True):
            if r["kind"] == "fault_start":
                started = r["event_ts"]
            elif started is not None:
                start, end = max(started, window.start), min(r["event_ts"], window.end)
                if end > start:
                    seconds += end.timestamp() - start.timestamp()
                    faults += 1
                started = None
        if started is not None and started < window.end:  # still down at the window end
            seconds += window.end.timestamp() - max(started, window.start).timestamp()
            faults += 1
        result[line_id] = (seconds, faults)
    return result
