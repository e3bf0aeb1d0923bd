"""When a line went silent: stretches in which data should have flowed and did not.

Two signals, per line:
- the simulator's heartbeat (`HEARTBEAT_TAG`, an accumulator the PLC publishes in every state) when the
  line has one;
- otherwise the line's own changes while it claims to run: in Execute at a speed above zero, the part
  counter moves at the line's rate, so a stretch without any change of the state, the speed or the counter
  much longer than the line's usual step means nothing reached us. A line that is stopped, or in Execute
  at speed 0 (starved), is legitimately quiet: outages there come from the collector's own record
  (edge `gaps`: disconnects, lost sessions, collector restarts), which callers add.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from plc.tagmap import PackMLState
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.transforms.counters import COUNT_TAGS
from twin_pipeline.lib.transforms.states import STATE_TAG

#: Tags whose regular updates prove the collector was listening (the simulated PLC publishes its
#: accumulators every `accumulator_period_s`, in every state). Real lines rarely have one.
HEARTBEAT_TAG = "Admin.AccTimeSinceReset"
SPEED_TAG = "Status.CurMachSpeed"
#: What a line without a heartbeat shows it is alive with while it runs.
ACTIVITY_TAGS: tuple[str, ...] = (STATE_TAG, SPEED_TAG, COUNT_TAGS["produced"])
#: Everything `line_silences` reads.
SILENCE_TAGS: tuple[str, ...] = (HEARTBEAT_TAG, *ACTIVITY_TAGS)
#: A signal silent for longer than this many typical intervals, and at least `MIN_GAP_S`, is a gap.
GAP_FACTOR = 5.0
MIN_GAP_S = 120.0
EXECUTE = int(PackMLState.Execute)


@dataclass(frozen=True)
class Silence:
    line_id: str
    start: datetime
    end: datetime
    seconds: float
    signal: str  # "heartbeat" or "activity"


def _silences(line_id: str, periods: list[tuple[datetime, datetime]], times: pl.Series, signal: str) -> list[Silence]:
    """Steps between consecutive `times` (sorted; bounded by each period's ends) longer than the limit,
    which is `GAP_FACTOR` times the median inner step of the line, and at least `MIN_GAP_S`. Vectorised:
    a heartbeat shift has hundreds of thousands of samples."""
    steps = []
    for start, end in periods:
        lo, hi = times.search_sorted(start, side="right"), times.search_sorted(end, side="left")
        bounds = pl.concat([pl.Series([start]).cast(times.dtype), times[lo:hi], pl.Series([end]).cast(times.dtype)])
        n = len(bounds) - 1
        steps.append(
            pl.DataFrame({"start": bounds[:-1], "end": bounds[1:]}).with_columns(
                ((pl.int_range(n) > 0) & (pl.int_range(n) < n - 1)).alias("inner")
            )
        )
    if not steps:
        return []
    frame = pl.concat(steps).with_columns(
        ((pl.col("end") - pl.col("start")).dt.total_microseconds() / 1e6).alias("seconds")
    )
    median = frame.filter(pl.col("inner"))["seconds"].median()
    limit = max(MIN_GAP_S, GAP_FACTOR * float(median if isinstance(median, int | float) else 0.0))
    silent = frame.filter(pl.col("seconds") > limit)
    return [Silence(line_id, a, b, sec, signal) for a, b, sec in silent.select("start", "end", "seconds").iter_rows()]


def _running_periods(samples: pl.DataFrame, window: ShiftWindow) -> list[tuple[datetime, datetime]]:
    """Where the line claims to run: in Execute, at a speed above zero when the speed is known (the
    carried-in values set the start)."""
    events = samples.filter(
        pl.col("tag").is_in([STATE_TAG, SPEED_TAG]) & pl.col("is_good") & pl.col("value").is_not_null()
    ).sort("source_ts", "seq")
    state: int | None = None
    speed: float | None = None
    periods: list[tuple[datetime, datetime]] = []
    began: datetime | None = None
    for tag, ts, value in events.select("tag", "source_ts", "value").iter_rows():
        if ts >= window.end:
            break
        if tag == STATE_TAG:
            state = int(value)
        else:
            speed = float(value)
        at = max(ts, window.start)
        running = state == EXECUTE and (speed is None or speed > 0)
        if running and began is None:
            began = at
        elif not running and began is not None:
            periods.append((began, at))
            began = None
    if began is not None:
        periods.append((began, window.end))
    return [(a, b) for a, b in periods if b > a]


def line_silences(samples: pl.DataFrame, window: ShiftWindow) -> list[Silence]:
    """Silences of each line in the shift (samples: the shift's bronze of `SILENCE_TAGS`, carried-in rows
    included): by its heartbeat when it has one, else by its own changes while it runs."""
    out: list[Silence] = []
    if not samples.height:
        return out
    inside = samples.filter(
        ~pl.col("carried_in") & (pl.col("source_ts") >= window.start) & (pl.col("source_ts") < window.end)
    )
    for line_id in sorted(samples["line_id"].unique().to_list()):
        mine = samples.filter(pl.col("line_id") == line_id)
        own = inside.filter(pl.col("line_id") == line_id)
        if mine.filter(pl.col("tag") == HEARTBEAT_TAG).height:
            beats = own.filter(pl.col("tag") == HEARTBEAT_TAG)["source_ts"].sort()
            out += _silences(line_id, [(window.start, window.end)], beats, "heartbeat")
        else:
            changes = own.filter(pl.col("tag").is_in(ACTIVITY_TAGS))["source_ts"].sort()
            out += _silences(line_id, _running_periods(mine, window), changes, "activity")
    return out
