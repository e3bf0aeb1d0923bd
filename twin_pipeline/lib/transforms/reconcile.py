"""Every kind the variability engine injects (`injected_events`), reconciled with what gold reports.

Per line and shift, each comparison is made only when the engine injected that kind on the line in the
lookback (a real PLC, or a disabled section, has nothing to compare with):

- stops by reason: starvation and blocking episodes (start -> end, inside planned busy time) against
  `fact_losses` breakdowns of cause starved / blocked, and injected faults against cause fault. Per
  episode the PLC adds its own reaction: the starve timeout before Suspending and the acting states
  (`STOP_TOLERANCE_S`);
- micro-stops: injected `micro_stop_start` count against the small-stop count;
- feed and speed: the performance loss the injected feed rate, speed limit, micro-stops and starvation
  imply over gold's Execute time, integral of (1 - rate / design rate), against gold's small stops + reduced
  speed, within two ideal cycles (the part in progress at each end of the shift) and 0.2 % of APT;
- quality drift: `fact_quality` mean deviation against the mean injected quality error at each measured
  part's time, inside its 99.99 % confidence interval (z = 4 times the gauge noise over sqrt(n));
- start-up rejects: injected `startup_rejects` parts against gold's start-up rejects, allowing for
  production rejects that happen to follow a restart (gold cannot tell those apart) and for restarts
  right at a shift edge.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow

#: Per starvation / blocking episode: starve timeout (5 s) + Suspending + Unsuspending, and some slack.
STOP_TOLERANCE_S = {"starved": 8.0, "blocked": 4.0, "fault": 5.0}
_EPISODE_CAUSE = {"starvation": "starved", "blocking": "blocked", "fault": "fault"}
#: z of the quality drift's confidence interval (two-sided 99.994 %).
QUALITY_Z = 4.0
#: Seconds around a shift edge where a start-up's rejects may fall into the neighbouring shift.
STARTUP_EDGE_S = 60.0


@dataclass(frozen=True)
class Comparison:
    """One reconciliation of one line and shift: what gold says, what was injected, and the tolerance."""

    shift_id: str
    line_id: str
    what: str
    gold: float
    injected: float
    tolerance: float

    @property
    def agrees(self) -> bool:
        return abs(self.gold - self.injected) <= self.tolerance

    def describe(self) -> str:
        return f"gold {self.gold:.4g}, injected {self.injected:.4g} (+-{self.tolerance:.3g})"


def _episodes(events: pl.DataFrame, line_id: str, kind: str, end: datetime) -> list[tuple[datetime, datetime]]:
    """(start, end) of each episode of `kind` on the line; one still open ends at `end`."""
    names = ("fault_start", "fault_end") if kind == "fault" else (f"{kind}_start", f"{kind}_end")
    rows = events.filter((pl.col("line_id") == line_id) & pl.col("kind").is_in(names)).sort("event_ts", "seq")
    out, started = [], None
    for r in rows.iter_rows(named=True):
        if r["kind"] == names[0]:
            started = r["event_ts"]
        elif started is not None:
            out.append((started, r["event_ts"]))
            started = None
    if started is not None:
        out.append((started, end))
    return out


def _timeline(events: pl.DataFrame, line_id: str, kinds: dict[str, float | None]) -> list[tuple[datetime, float]]:
    """(time, value) of a setting from its injected rows; `kinds` maps a kind to a fixed value (None: the row's)."""
    rows = events.filter((pl.col("line_id") == line_id) & pl.col("kind").is_in(list(kinds))).sort("event_ts", "seq")
    out: list[tuple[datetime, float]] = []
    for r in rows.iter_rows(named=True):
        fixed = kinds[r["kind"]]
        out.append((r["event_ts"], float(r["value"]) if fixed is None else fixed))
    return out


def _at(timeline: list[tuple[datetime, float]], t: datetime) -> float | None:
    """The value in force at `t` (the last change at or before it), by binary search: called per cut."""
    i = bisect.bisect_right(timeline, t, key=lambda change: change[0])
    return timeline[i - 1][1] if i else None


def _expected_performance_loss(
    events: pl.DataFrame, line_id: str, execute: list[tuple[datetime, datetime]], design_ppm: float
) -> float | None:
    """Integral over the Execute intervals of (1 - rate / design) with the injected rate: min(feed, limit,
    design), 0 while a micro-stop or starvation holds; None when the feed rate is unknown at their start."""
    feed = _timeline(events, line_id, {"feed_rate": None})
    limit = _timeline(events, line_id, {"reduced_speed_start": None, "reduced_speed_end": 0.0})
    halted = _timeline(
        events,
        line_id,
        {"micro_stop_start": 1.0, "micro_stop_end": 0.0, "starvation_start": 1.0, "starvation_end": 0.0},
    )
    if not execute or _at(feed, execute[0][0]) is None:
        return None
    changes = sorted({ts for ts, _ in (*feed, *limit, *halted)})
    loss = 0.0
    for a, b in execute:
        inside = changes[bisect.bisect_right(changes, a) : bisect.bisect_left(changes, b)]  # a < t < b
        cuts = [a, *inside, b]
        for s, e in itertools.pairwise(cuts):
            f = _at(feed, s) or 0.0
            lim = _at(limit, s) or 0.0
            rate = 0.0 if (_at(halted, s) or 0.0) else min(f, lim if lim > 0 else math.inf, design_ppm)
            loss += (e.timestamp() - s.timestamp()) * (1.0 - rate / design_ppm)
    return loss


def comparisons(
    window: ShiftWindow,
    events: pl.DataFrame,
    losses: pl.DataFrame,
    oee: pl.DataFrame,
    quality: pl.DataFrame,
    intervals: pl.DataFrame,
    measurements: pl.DataFrame,
) -> list[Comparison]:
    """Every comparison of one shift. `events`: injected rows from a lookback before the window to its end;
    the gold and silver frames: this shift's rows."""
    out: list[Comparison] = []
    shift_id = window.shift_id
    for r in oee.filter(pl.col("shift_id") == shift_id).sort("line_id").iter_rows(named=True):
        line_id = r["line_id"]
        mine = events.filter(pl.col("line_id") == line_id)
        if not mine.height:
            continue  # no engine drives this line
        kinds = set(mine["kind"].to_list())
        lost = losses.filter((pl.col("shift_id") == shift_id) & (pl.col("line_id") == line_id))

        def loss(name: str, column: str, cause: str | None = None) -> float:
            rows = lost.filter(pl.col("loss") == name)  # noqa: B023 - called inside this iteration only
            if cause is not None:
                rows = rows.filter(pl.col("cause") == cause)
            return float(rows[column].fill_null(0).sum())

        def add(what: str, gold: float, injected: float, tolerance: float) -> None:
            out.append(Comparison(shift_id, line_id, what, gold, injected, tolerance))  # noqa: B023 - called inside this iteration only

        # stops by reason
        for kind, cause in _EPISODE_CAUSE.items():
            if f"{kind}_start" not in kinds:
                continue
            spans = [(s, e) for s, e in _episodes(mine, line_id, kind, window.end) if window.busy_seconds(s, e) > 0]
            injected_s = sum(window.busy_seconds(s, e) for s, e in spans)
            add(
                f"{cause} downtime s",
                loss("breakdowns", "seconds", cause),
                injected_s,
                STOP_TOLERANCE_S[cause] * len(spans) + 2.0,
            )
        # micro-stops
        if "micro_stop_start" in kinds:
            starts = mine.filter(pl.col("kind") == "micro_stop_start")["event_ts"].to_list()
            n = sum(1 for t in starts if window.busy_seconds(t, t + timedelta(microseconds=1)) > 0)
            add("small stops", loss("small_stops", "count"), float(n), 1.0 + 0.02 * n)
        # feed and speed against the performance loss
        ict = r["ideal_cycle_time_s"]
        if ict and kinds & {"feed_rate", "reduced_speed_start"}:
            execute = (
                intervals.filter(
                    (pl.col("line_id") == line_id) & (pl.col("time_element") == "production") & ~pl.col("planned_break")
                )
                .sort("start")
                .select("start", "end")
                .rows()
            )
            expected = _expected_performance_loss(mine, line_id, execute, 60.0 / ict)
            if expected is not None:
                gold = loss("small_stops", "seconds") + loss("reduced_speed", "seconds")
                add("performance loss s", gold, expected, 2 * ict + 0.002 * r["actual_production_time_s"] + 1.0)
        # quality drift
        q = quality.filter((pl.col("shift_id") == shift_id) & (pl.col("line_id") == line_id))
        if "quality_shift" in kinds and q.height and q["parts_measured"][0] >= 2:
            expected_mean, half_width = _expected_quality(mine, measurements.filter(pl.col("line_id") == line_id))
            if expected_mean is not None:
                add("mean deviation mm", float(q["mean_mm"][0]), expected_mean, half_width)
        # start-up rejects
        if "startup_rejects" in kinds:
            rows = mine.filter(
                (pl.col("kind") == "startup_rejects")
                & (pl.col("event_ts") >= window.start)
                & (pl.col("event_ts") < window.end)
            )
            # gold counts rejects inside planned busy time: a restart in a break is not compared, and one
            # near an edge (shift or break) may have its rejects on either side
            edges = [window.start, window.end, *(t for b in window.breaks for t in b)]
            injected_parts = near_edge = 0.0
            for ts, value in rows.select("event_ts", "value").rows():
                if any(abs((ts - edge).total_seconds()) < STARTUP_EDGE_S for edge in edges):
                    near_edge += value
                elif window.busy_seconds(ts, ts + timedelta(microseconds=1)) > 0:
                    injected_parts += value
            production = loss("production_rejects", "parts")
            p = min(production / r["produced"], 0.9) if r["produced"] else 0.0
            coincident = rows.height * p / (1 - p)
            tolerance = 1.0 + near_edge / 2 + coincident + 3 * math.sqrt(coincident)
            add("startup rejects", loss("startup_rejects", "parts"), injected_parts + near_edge / 2, tolerance)
    return out


def _expected_quality(events: pl.DataFrame, parts: pl.DataFrame) -> tuple[float | None, float]:
    """Mean injected quality error at the measured parts' times, and the half-width of the confidence
    interval of the measured mean around it (z x residual sd / sqrt(n))."""
    shifts = (
        events.filter(pl.col("kind") == "quality_shift")
        .sort("event_ts", "seq")
        .select(pl.col("event_ts").alias("measured_ts"), pl.col("value").alias("error_mm"))
    )
    if not parts.height or not shifts.height:
        return None, 0.0
    joined = parts.sort("measured_ts").join_asof(shifts, on="measured_ts", strategy="backward")
    if joined["error_mm"].null_count():
        return None, 0.0  # parts before the first injected error: the error then is unknown
    residual = joined["deviation_mm"] - joined["error_mm"]
    n = joined.height
    sd = residual.cast(pl.Float64).std()
    mean = joined["error_mm"].cast(pl.Float64).mean()
    sd = float(sd) if isinstance(sd, float) else 0.0
    return float(mean) if isinstance(mean, float) else 0.0, QUALITY_Z * sd / math.sqrt(n) + 1e-9


def summary(found: list[Comparison]) -> dict[str, Any]:
    """Check metadata: every comparison, and the disagreements."""
    return {f"{c.shift_id} {c.line_id} {c.what}": c.describe() for c in found}
