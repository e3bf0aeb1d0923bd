"""The current shift so far, per line, from the edge tables: what the live page shows.

Why the pipeline's own transforms: the live figures must be what the shift's gold will say once the
shift is over. So the edge rows of the shift so far go through `bronze_samples`, `state_intervals`
(with the collector's outages and the lines' silences), `part_counts`, `oee_rows` and `stops`, over
the shift's window cut at "now" (`so_far`): its planned busy time is then the busy time so far, and
availability is over it. No OEE arithmetic here.

"Now" is the plant's clock, the newest sample time in the edge data: a live line run at --speed K
is ahead of the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from twin_pipeline.lib.calendar.shift_calendar import ShiftCalendar, ShiftWindow
from twin_pipeline.lib.edge_source import plc_gaps
from twin_pipeline.lib.quality.silences import SILENCE_TAGS, SPEED_TAG, line_silences
from twin_pipeline.lib.transforms.bronze import ORDER, bronze_samples
from twin_pipeline.lib.transforms.counters import COUNT_TAGS, DESIGN_SPEED_TAG, part_counts
from twin_pipeline.lib.transforms.downtime import stops
from twin_pipeline.lib.transforms.oee import SPEED_COLUMNS, oee_rows
from twin_pipeline.lib.transforms.states import REASON_TAG, STATE_TAG, state_intervals

#: The tags each silver table reads (as `defs/silver/assets.py` reads bronze), and what the page adds.
STATE_TAGS: tuple[str, ...] = tuple(dict.fromkeys([STATE_TAG, REASON_TAG, *SILENCE_TAGS]))
COUNT_INPUT_TAGS: tuple[str, ...] = (*COUNT_TAGS.values(), DESIGN_SPEED_TAG)
LIVE_TAGS: tuple[str, ...] = tuple(dict.fromkeys([*STATE_TAGS, *COUNT_INPUT_TAGS, SPEED_TAG]))
#: One microsecond: the newest sample belongs to the window cut just after it.
TICK = timedelta(microseconds=1)


def plant_now(raw: pl.DataFrame) -> datetime | None:
    """The plant's clock: the newest sample's source time (None: no samples)."""
    return raw["source_ts"].max() if raw.height else None  # type: ignore[return-value]  # a Datetime column's max


def so_far(window: ShiftWindow, until: datetime) -> ShiftWindow:
    """The shift's window cut at `until`, its planned breaks clipped: its planned busy time is the busy
    time so far. At `until >= window.end` it is the whole shift."""
    end = min(max(until, window.start), window.end)
    breaks = tuple((s, min(e, end)) for s, e in window.breaks if s < end)
    return replace(window, end=end, breaks=breaks)


def current_window(calendar: ShiftCalendar, now: datetime) -> ShiftWindow:
    """The shift the plant is in at `now`, so far (its newest sample included)."""
    return so_far(calendar.shift_at(now), now + TICK)


@dataclass(frozen=True)
class LiveLine:
    """One line's card: its state and speed now, and the shift so far."""

    line_id: str
    state: str | None
    state_since: datetime | None
    speed: float | None
    design_speed: float | None
    oee: dict[str, Any]  # the line's `fact_oee_shift` row of the shift so far
    last_stops: list[dict[str, Any]]  # the newest first: `fact_downtime` rows (reason, duration_s, ...)


@dataclass(frozen=True)
class LiveShift:
    window: ShiftWindow  # cut at now
    now: datetime  # the cut: just after the newest sample
    intervals: pl.DataFrame  # silver state intervals of the shift so far
    oee: pl.DataFrame  # `fact_oee_shift` rows of the shift so far
    stops: pl.DataFrame  # `fact_downtime` rows
    lines: list[LiveLine]


def _tags(frame: pl.DataFrame, tags: tuple[str, ...]) -> pl.DataFrame:
    return frame.filter(pl.col("tag").is_in(list(tags))) if frame.height else frame


def _last_value(bronze: pl.DataFrame, line_id: str, tag: str) -> tuple[float | None, datetime | None]:
    """The tag's newest good value and when it first took that value (the start of its last run)."""
    rows = bronze.filter((pl.col("line_id") == line_id) & (pl.col("tag") == tag) & pl.col("is_good")).sort(ORDER)
    values = rows["value"].to_list()
    if not values:
        return None, None
    last, i = values[-1], len(values) - 1
    while i > 0 and values[i - 1] == last:
        i -= 1
    return last, rows["source_ts"][i]


def live_shift(
    raw: pl.DataFrame, before: pl.DataFrame, gaps: pl.DataFrame, window: ShiftWindow, stops_shown: int = 5
) -> LiveShift:
    """The shift so far. `raw`: edge `raw_samples` rows in [window.start, window.end); `before`: bronze
    rows (or typed edge rows) from before the shift, for the values it starts with (the previous shift's
    bronze, as bronze reads it); `gaps`: the edges' outages (`EdgeSource.gaps`); `window`: cut at now."""
    bronze, _ = bronze_samples(_tags(raw, LIVE_TAGS), window, _tags(before, LIVE_TAGS))
    state_samples = _tags(bronze, STATE_TAGS)
    lines = sorted(state_samples["line_id"].unique().to_list()) if state_samples.height else []
    silences = [(g.line_id, g.start, g.end) for g in line_silences(state_samples, window)]
    intervals = state_intervals(state_samples, window, lines, plc_gaps(gaps, window) + silences)
    counts = part_counts(_tags(bronze, COUNT_INPUT_TAGS), window)
    speed = _tags(bronze, (DESIGN_SPEED_TAG,)).select(SPEED_COLUMNS)
    oee = oee_rows(intervals, counts, speed, window)
    downtime = stops(intervals)
    cards = []
    for row in oee.iter_rows(named=True):
        line_id = row["line_id"]
        _, since = _last_value(bronze, line_id, STATE_TAG)
        mine = intervals.filter(pl.col("line_id") == line_id)
        state = mine["state_name"][-1] if mine.height else None
        speed_now, _ = _last_value(bronze, line_id, SPEED_TAG)
        design, _ = _last_value(bronze, line_id, DESIGN_SPEED_TAG)
        last = downtime.filter(pl.col("line_id") == line_id).sort("stop_start", descending=True).head(stops_shown)
        cards.append(LiveLine(line_id, state, since, speed_now, design, row, last.to_dicts()))
    return LiveShift(window, window.end, intervals, oee, downtime, cards)
