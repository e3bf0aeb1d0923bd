"""Gap records across collector stops: an outage open at stop is written, and continued at the next start.

Why: a gap row used to be written only when data flowed again, so an outage still open when the
collector stopped left no trace, and the next start's `collector_down` row began at the last sample
received, overlapping or leaving holes against what was written before. Now:

- at stop, every open gap ends at the stop instant, keeps its reason (`disconnected`,
  `session_lost`, ...) and has no `source_ts_after` (no data closed it);
- at start, a line's `collector_down` gap begins where the line's last gap row ended, or at its last
  received sample if that is later, and stays open until data flows again (or the next stop).

So the union of a line's gap rows covers the whole outage, across any number of stops and starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .schemas import edge_table_path


@dataclass
class OpenGap:
    row: dict[str, Any]
    closed: bool = False


def last_gap_ends(lake: Path) -> dict[str, datetime]:
    """Per line, the latest `gap_end` in the gaps table (its last two day partitions by gap_start)."""
    import polars as pl
    from deltalake import DeltaTable

    path = edge_table_path(lake, "gaps")
    if not (path / "_delta_log").exists():
        return {}
    days = sorted({p["day"] for p in DeltaTable(str(path)).partitions()})
    if not days:
        return {}
    frame = (
        pl.scan_delta(str(path))
        .filter(pl.col("day").is_in(days[-2:]))
        .group_by("line_id")
        .agg(pl.col("gap_end").max())
        .collect()
    )
    return dict(zip(frame["line_id"].to_list(), frame["gap_end"].to_list()))


def downtime_gap(
    line_id: str, last_received: datetime, last_gap_end: datetime | None, last_source: datetime, session_id: str
) -> OpenGap:
    """The open `collector_down` gap of a line at start (see the module docstring)."""
    start = max(last_received, last_gap_end) if last_gap_end is not None else last_received
    return OpenGap(
        {
            "line_id": line_id,
            "gap_start": start,
            "gap_end": None,
            "reason": "collector_down",
            "session_id": session_id,
            "source_ts_before": last_source,
            "source_ts_after": None,
        }
    )


def end_open_gaps(gaps: dict[str, OpenGap], stopped: datetime) -> list[str]:
    """End every gap still open at the stop instant; the lines whose outage was open."""
    ended = []
    for line_id, gap in gaps.items():
        if not gap.closed:
            gap.row["gap_end"] = stopped
            gap.closed = True
            ended.append(line_id)
    return ended
