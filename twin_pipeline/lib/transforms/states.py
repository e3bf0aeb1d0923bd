"""State intervals per line, clipped to a shift window, from `Status.StateCurrent` changes.

The state in effect at the shift start comes from the previous shift's last change; before any
known state, and while the PLC reports a value that is no PackML state, the interval is `unknown`.
Intervals are cut at planned break boundaries and flagged `planned_break`, so OEE counts only time
inside planned busy time. Intervals overlapping an outage of the collector are flagged `in_gap`:
their state is the last one seen, but nobody watched.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import polars as pl

from plc.tagmap import PackMLState
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.contracts import SILVER_STATE_INTERVALS
from twin_pipeline.lib.transforms.oee import TIME_ELEMENT

STATE_TAG = "Status.StateCurrent"
REASON_TAG = "Admin.StopReason.ID"


def _changes(samples: pl.DataFrame, line_id: str, tag: str) -> list[tuple[datetime, int]]:
    rows = samples.filter(
        (pl.col("line_id") == line_id) & (pl.col("tag") == tag) & pl.col("is_good") & pl.col("value").is_not_null()
    ).sort("source_ts", "server_ts", "seq")  # bronze.ORDER: ties (one tick) by server time, then sequence
    # a value outside Int32 (a corrupt sample) becomes -1: no state, no reason; never an overflow
    return list(
        zip(rows["source_ts"].to_list(), (int(v) if -(2**31) <= v < 2**31 else -1 for v in rows["value"].to_list()))
    )


def _value_at(changes: list[tuple[datetime, int]], t: datetime) -> int | None:
    value = None
    for ts, v in changes:
        if ts > t:
            break
        value = v
    return value


def state_intervals(
    samples: pl.DataFrame, window: ShiftWindow, line_ids: list[str], gaps: list[tuple[str, datetime, datetime]]
) -> pl.DataFrame:
    """`samples`: bronze rows of this shift and the previous one; `gaps`: (line, start, end) in PLC time."""
    rows = []
    for line_id in line_ids:
        changes = _changes(samples, line_id, STATE_TAG)
        reasons = _changes(samples, line_id, REASON_TAG)
        inside = [(ts, v) for ts, v in changes if window.start < ts < window.end]
        points = [(window.start, _value_at(changes, window.start)), *inside]
        line_gaps = [(s, e) for g_line, s, e in gaps if g_line == line_id]
        cuts = sorted({t for b in window.breaks for t in b if window.start < t < window.end})
        pieces: list[tuple[datetime, Any, datetime]] = []
        for (start, state), (end, _) in zip(points, [*points[1:], (window.end, None)]):
            bounds = [start, *(t for t in cuts if start < t < end), end]
            pieces.extend((a, state, b) for a, b in itertools.pairwise(bounds))
        for start, state, end in pieces:
            if end <= start:
                continue
            known = state in TIME_ELEMENT  # a value that is no PackML state is unknown time (the range check names it)
            reason = _value_at(reasons, start) if known and TIME_ELEMENT[state] != "production" else None
            rows.append(
                {
                    "shift_id": window.shift_id,
                    "line_id": line_id,
                    "state": state,
                    "state_name": PackMLState(state).name if known else None,
                    "time_element": TIME_ELEMENT[state] if known else "unknown",
                    "start": start,
                    "end": end,
                    "duration_s": end.timestamp() - start.timestamp(),
                    "stop_reason": reason,
                    "in_gap": any(s < end and e > start for s, e in line_gaps),
                    "planned_break": any(b_start <= start and end <= b_end for b_start, b_end in window.breaks),
                }
            )
    return pl.DataFrame(rows, schema=SILVER_STATE_INTERVALS)
