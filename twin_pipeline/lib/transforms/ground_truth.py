"""The variability engine's ground truth (`injected_events`) in the terms gold reports."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.edge_source import EdgeSource


def injected_fault_seconds(
    edges: EdgeSource, window: ShiftWindow, lookback_s: float = 86_400.0
) -> dict[str, tuple[float, int]]:
    """Per line: injected fault time (fault_start -> fault_end) within the window's planned busy time,
    where gold counts fault downtime (a line that runs through a break and fails there loses no busy
    time), and the number of faults with some of it there."""
    events = (
        edges.scan("injected_events", "event_ts", window.start - timedelta(seconds=lookback_s), window.end)
        .filter(pl.col("kind").is_in(["fault_start", "fault_end"]))
        .collect()
        .sort("line_id", "event_ts", "seq")
    )
    result: dict[str, tuple[float, int]] = {}
    for (line_id,), rows in events.group_by(["line_id"]):
        seconds, faults, started = 0.0, 0, None
        for r in rows.sort("event_ts", "seq").iter_rows(named=True):
            if r["kind"] == "fault_start":
                started = r["event_ts"]
            elif started is not None:
                busy = window.busy_seconds(started, r["event_ts"])
                if busy > 0:
                    seconds += busy
                    faults += 1
                started = None
        if started is not None:  # still down at the window end
            busy = window.busy_seconds(started, window.end)
            if busy > 0:
                seconds += busy
                faults += 1
        result[line_id] = (seconds, faults)
    return result
