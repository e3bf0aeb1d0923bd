"""Stops: one row per interruption of Execute, with its reason, from the state intervals.

A stop is a maximal run of non-Execute intervals outside planned breaks. Its reason is the PLC's
stop reason when it began (the tag map's [stop_reasons]: 1..999 equipment faults, then starved,
blocked, operator commands, batch complete). Short stops are microstops.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from plc.tagmap import TAGS
from twin_pipeline.lib.contracts import FACT_DOWNTIME

MICROSTOP_S = 60.0
_NAMES = {v: k for k, v in TAGS.stop_reasons.items()}


def reason_category(code: int | None) -> str:
    if code is None or code == 0:
        return "none"
    if 1 <= code <= 999:
        return "fault"
    return {1001: "starved", 1002: "blocked", 1007: "batch"}.get(code, "operator")


def stops(intervals: pl.DataFrame) -> pl.DataFrame:
    """One row per stop of each line in the given shift's state intervals."""
    rows: list[dict[str, Any]] = []
    if not intervals.height:
        return pl.DataFrame(rows, schema=FACT_DOWNTIME)
    for (shift_id, line_id), group in intervals.filter(~pl.col("planned_break")).group_by(["shift_id", "line_id"]):
        group = group.sort("start")
        first_start, last_end = group["start"].min(), group["end"].max()
        current: list[dict] = []

        def close() -> None:
            if not current:
                return
            start, end = current[0]["start"], current[-1]["end"]
            code = next((r["stop_reason"] for r in current if r["stop_reason"] is not None), None)
            rows.append({
                "shift_id": shift_id, "line_id": line_id, "stop_start": start, "stop_end": end,
                "duration_s": sum(r["duration_s"] for r in current), "reason_code": code,
                "reason": _NAMES.get(code, f"Fault{code}") if code is not None else None,
                "category": reason_category(code),
                "states": ">".join(dict.fromkeys(r["state_name"] or "Unknown" for r in current)),
                "is_microstop": sum(r["duration_s"] for r in current) < MICROSTOP_S,
                "open_at_shift_start": start == first_start, "open_at_shift_end": end == last_end,
                "in_gap": any(r["in_gap"] for r in current),
            })
            current.clear()

        for r in group.iter_rows(named=True):
            if r["time_element"] == "production":
                close()
            else:
                current.append(r)
        close()
    return pl.DataFrame(rows, schema=FACT_DOWNTIME).sort("line_id", "stop_start")
