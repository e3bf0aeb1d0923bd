"""The variability engine's ground truth (`injected_events`) in the terms gold reports."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from edge_collector.schemas import edge_table_path
from twin_pipeline.delta_io import scan_edge
from twin_pipeline.shift_calendar import ShiftWindow


def _busy_seconds(start: datetime, end: datetime, window: ShiftWindow) -> float:
    """Seconds of [start, end) inside the window and outside its planned breaks: planned busy time, where
    gold counts fault downtime (a line that runs through a break and fails there loses no busy time)."""
    start, end = max(start, window.start), min(end, window.end)
    if end <= start:
        return 0.0
    seconds = end.timestamp() - start.timestamp()
    for b_start, b_end in window.breaks:
        overlap = min(end, b_end).timestamp() - max(start, b_start).timestamp()
        seconds -= max(overlap, 0.0)
    return seconds


def injected_fault_seconds(lake: Path, window: ShiftWindow, lookback_s: float = 86_400.0) -> dict[str, tuple[float, int]]:
    """Per line: injected fault time (fault_start -> fault_end) within the window's planned busy time,
    and the number of faults with some of it there."""
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
                busy = _busy_seconds(started, r["event_ts"], window)
                if busy > 0:
                    seconds += busy
                    faults += 1
                started = None
        if started is not None:  # still down at the window end
            busy = _busy_seconds(started, window.end, window)
            if busy > 0:
                seconds += busy
                faults += 1
        result[line_id] = (seconds, faults)
    return result
