"""Gap records across collector stops: an outage open at stop is written, and continued at the next start.

Why: a gap row used to be written only when data flowed again, so an outage still open when the
collector stopped left no trace, and the next start's `collector_down` row began at the last sample
received, overlapping or leaving holes against what was written before. Now:

- at stop, every open gap ends at the stop instant, keeps its reason (`disconnected`,
  `session_lost`, ...) and has no `source_ts_after` (no data closed it);
- at start, a line's `collector_down` gap begins where the line's last gap row ended, or at its last
  received sample if that is later, and stays open until data flows again (or the next stop).

So the union of a line's gap rows covers the whole outage, across any number of stops and starts.

`GapBook` is the collector's bookkeeping of them: at most one open gap per line, opened when the
connection is lost (or the subscription goes stale or silent), closed when data flows again, and
written once the line's first new sample gives it its `source_ts_after` (or at stop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .schemas import edge_table_path

log = logging.getLogger("edge_collector")


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


class GapBook:
    """The open gaps of the collected lines (one per line; the earliest start wins), until written."""

    def __init__(
        self, session_id: str, next_seq: Callable[[str], int], add: Callable[[str, dict[str, Any]], None]
    ) -> None:
        self.session_id = session_id
        self.next_seq = next_seq
        self.add = add
        self.gaps: dict[str, OpenGap] = {}
        self.last_source: dict[str, datetime] = {}  # per line, the source_ts of the last new sample
        self.written = 0

    def resume(
        self, line_id: str, last_source: datetime, last_received: datetime, last_gap_end: datetime | None
    ) -> None:
        """At start: the line's `collector_down` gap, open until data flows (continues the last gap row)."""
        self.last_source[line_id] = last_source
        self.gaps[line_id] = downtime_gap(line_id, last_received, last_gap_end, last_source, self.session_id)

    def open(self, line_id: str, start: datetime, reason: str) -> None:
        if line_id in self.gaps:
            return  # one open gap per line; the earliest start wins
        self.gaps[line_id] = OpenGap(
            {
                "line_id": line_id,
                "gap_start": start,
                "gap_end": None,
                "reason": reason,
                "session_id": self.session_id,
                "source_ts_before": self.last_source.get(line_id),
                "source_ts_after": None,
            }
        )

    def relabel(self, reason: str, replacing: tuple[str, ...]) -> None:
        """Give the open gaps whose reason is one of `replacing` the better-known `reason`."""
        for gap in self.gaps.values():
            if gap.row["reason"] in replacing:
                gap.row["reason"] = reason

    def close(self, end: datetime, reason: str | None = None) -> None:
        for gap in self.gaps.values():
            if not gap.closed:
                gap.row["gap_end"] = end
                if reason and gap.row["reason"] == "disconnected":
                    gap.row["reason"] = reason
                gap.closed = True

    def write(self, line_id: str, source_after: datetime | None) -> None:
        gap = self.gaps.pop(line_id)
        row = dict(gap.row)
        row["gap_end"] = row["gap_end"] or datetime.now(UTC)
        row["source_ts_after"] = source_after
        row["seq"] = self.next_seq(line_id)
        row["day"] = row["gap_start"].strftime("%Y-%m-%d")
        self.add("gaps", row)
        self.written += 1
        log.warning(
            "gap on %s from %s to %s (%s)",
            line_id,
            row["gap_start"],
            row["gap_end"],
            row["reason"],
            extra={"line_id": line_id, "reason": row["reason"]},
        )

    def end_at_stop(self, stopped: datetime) -> None:
        """End the gaps still open at the stop instant (an outage open at stop is a gap, continued at start)."""
        for line_id in end_open_gaps(self.gaps, stopped):
            log.warning("line %s: outage still open at stop; its gap ends at the stop", line_id)

    def write_remaining(self) -> None:
        """Write every gap not written yet, without `source_ts_after` (no data closed it)."""
        for line_id in list(self.gaps):
            self.write(line_id, None)
