"""The six big losses per line and shift, on the ISO 22400-2 time elements of `fact_oee_shift`.

Every second of planned busy time (PBT) that did not make a good part at the ideal rate is one loss:

- breakdowns (availability, ISO 22400-2 ADET, unit delay time): time in the fault and stop states
  (Aborting, Aborted, Clearing; Held, Suspended, ...), a row per cause (the stop reason's category);
  count = stops.
- setup_adjustment (availability, AUST, unit setup time): time in the setup states (Stopped, Resetting,
  Idle, Starting, Completing, ...), a row per cause; count = restarts (Starting entries).
- small_stops (performance, inside APT): time in Execute at speed 0 (`Status.CurMachSpeed`); count =
  the zero-speed runs that resumed in Execute (a run ended by a state change is a stop's lead-in).
- reduced_speed (performance, APT): the rest of the performance loss, APT - ideal cycle time x
  produced - small stops; no count.
- startup_rejects (quality, APT): rejects after a restart (Starting -> Execute) before its first good
  part; seconds = parts x ideal cycle time; count = restarts with some.
- production_rejects (quality, APT): the other rejects; seconds = parts x ideal cycle time.
- unknown (availability, no element): time in no known state (a data gap), a row only when there is some.

`parts` is the rejected parts for the reject losses, seconds / ideal cycle time for the others.

So availability loss (PBT - APT) = breakdowns + setup_adjustment (+ unknown), performance loss
(APT - ideal cycle time x produced) = small_stops + reduced_speed, and quality loss (reject parts) =
startup_rejects + production_rejects; PBT minus every loss's seconds is the fully productive time,
ideal cycle time x good = OEE x PBT. `loss_totals_problems` checks exactly this against `fact_oee_shift`.

A small stop is a jam the PLC does not report as a state: the line stays in Execute making nothing.
ISO 22400-2 would count a minor stoppage reported as a state as delay time (ADET); here it is inside
APT, where the six big losses put it (a performance loss). Reduced speed may be negative when
performance exceeds 1 (flagged in `fact_oee_shift`, never capped).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import polars as pl

from plc.tagmap import PackMLState as S
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.contracts import FACT_LOSSES
from twin_pipeline.lib.transforms.counters import COUNT_TAGS
from twin_pipeline.lib.transforms.downtime import reason_category

SPEED_TAG = "Status.CurMachSpeed"
STATE_TAG = "Status.StateCurrent"
#: The bronze tags the losses read beside silver and gold.
LOSS_TAGS = (STATE_TAG, SPEED_TAG, *COUNT_TAGS.values())

#: Loss -> (OEE factor, ISO 22400-2 time element).
LOSSES: dict[str, tuple[str, str | None]] = {
    "breakdowns": ("availability", "ADET"),
    "setup_adjustment": ("availability", "AUST"),
    "small_stops": ("performance", "APT"),
    "reduced_speed": ("performance", "APT"),
    "startup_rejects": ("quality", "APT"),
    "production_rejects": ("quality", "APT"),
    "unknown": ("availability", None),
}
_ELEMENT_LOSS = {"fault": "breakdowns", "stop": "breakdowns", "setup": "setup_adjustment", "unknown": "unknown"}
EXECUTE, STARTING = int(S.Execute), int(S.Starting)


def _series(samples: pl.DataFrame, line_id: str, tag: str) -> list[tuple[datetime, float]]:
    rows = samples.filter(
        (pl.col("line_id") == line_id) & (pl.col("tag") == tag) & pl.col("is_good") & pl.col("value").is_not_null()
    ).sort("source_ts")
    return list(zip(rows["source_ts"].to_list(), rows["value"].to_list()))


def small_stops(
    samples: pl.DataFrame, intervals: pl.DataFrame, line_id: str
) -> tuple[float, int, list[tuple[datetime, datetime]]]:
    """Seconds in Execute (outside planned breaks) at speed 0, the number of such runs that resumed in
    Execute, and those runs (start, end)."""
    speed = _series(samples, line_id, SPEED_TAG)
    execute = intervals.filter(
        (pl.col("line_id") == line_id) & (pl.col("time_element") == "production") & ~pl.col("planned_break")
    ).sort("start")
    seconds, resumed = 0.0, []
    i, current = 0, None
    for a, b in zip(execute["start"].to_list(), execute["end"].to_list()):
        while i < len(speed) and speed[i][0] <= a:  # the speed in effect at a (a change at a included)
            current = speed[i][1]
            i += 1
        t, value = a, current
        j = i
        while True:
            nxt = speed[j] if j < len(speed) and speed[j][0] < b else None
            end = nxt[0] if nxt is not None else b
            if value == 0.0 and end > t:
                seconds += end.timestamp() - t.timestamp()
                if nxt is not None and nxt[1] > 0:
                    resumed.append((t, end))
            if nxt is None:
                break
            t, value = nxt[0], nxt[1]
            j += 1
    return seconds, len(resumed), resumed


def startup_rejects(samples: pl.DataFrame, window: ShiftWindow, line_id: str) -> tuple[int, int]:
    """Rejects after each restart (Starting -> Execute) until its first good part, made inside the shift's
    planned busy time, and the number of restarts that had some. A part is a processed-count increment;
    it is a reject when the defective count rose at the same instant (the PLC writes both in one scan).
    A part stamped at a restart's instant belongs to no run. Vectorised: a shift has some 80,000 parts."""
    states = _series(samples, line_id, STATE_TAG)
    restarts = [
        ts for (_, prev), (ts, cur) in itertools.pairwise(states) if int(prev) == STARTING and int(cur) == EXECUTE
    ]
    if not restarts:
        return 0, 0
    good = samples.filter((pl.col("line_id") == line_id) & pl.col("is_good") & pl.col("value").is_not_null())
    rejected = good.filter(pl.col("tag") == COUNT_TAGS["defective"])["source_ts"]
    at = pl.Series("restarts", restarts, dtype=samples.schema["source_ts"])
    ts = pl.col("source_ts")
    in_break = pl.any_horizontal([(ts >= a) & (ts < b) for a, b in window.breaks]) if window.breaks else pl.lit(False)
    made = good.filter((pl.col("tag") == COUNT_TAGS["produced"]) & ~ts.is_in(at.implode())).select("source_ts")
    made = made.sort("source_ts")
    runs = (
        made.with_columns(
            (at.search_sorted(made["source_ts"], side="left").cast(pl.Int64) - 1).alias("run"),  # last restart before
            ts.is_in(rejected.implode()).alias("reject"),
        )
        .filter(pl.col("run") >= 0)
        .with_columns(pl.col("reject").cum_min().over("run").alias("leading"))  # rejects before its first good
        .filter(pl.col("leading") & (ts >= window.start) & (ts < window.end) & ~in_break)
        .group_by("run")
        .len()
    )
    return int(runs["len"].sum()), runs.height


def _row(
    shift_id: str, line_id: str, loss: str, cause: str | None, seconds: float, count: int | None, parts: float | None
) -> dict[str, Any]:
    factor, element = LOSSES[loss]
    return {
        "shift_id": shift_id,
        "line_id": line_id,
        "loss": loss,
        "oee_factor": factor,
        "time_element": element,
        "cause": cause,
        "seconds": seconds,
        "count": count,
        "parts": parts,
    }


def loss_rows(oee: pl.DataFrame, intervals: pl.DataFrame, samples: pl.DataFrame, window: ShiftWindow) -> pl.DataFrame:
    """`fact_losses` rows of one shift from its `fact_oee_shift` rows, silver state intervals and bronze
    samples (`LOSS_TAGS`, carried-in rows included)."""
    rows: list[dict[str, Any]] = []
    for r in oee.filter(pl.col("shift_id") == window.shift_id).sort("line_id").iter_rows(named=True):
        line_id, shift_id, ict = r["line_id"], r["shift_id"], r["ideal_cycle_time_s"]

        def parts_of(seconds: float) -> float | None:
            return seconds / ict if ict else None  # noqa: B023 - called inside this iteration only

        mine = (
            intervals.filter((pl.col("line_id") == line_id) & ~pl.col("planned_break"))
            if intervals.height
            else intervals
        )
        down = mine.filter(pl.col("time_element") != "production") if mine.height else mine
        by_cause: dict[tuple[str, str | None], float] = {}
        for d in down.iter_rows(named=True):
            loss = _ELEMENT_LOSS[d["time_element"]]
            cause = None if loss == "unknown" else reason_category(d["stop_reason"])
            by_cause[(loss, cause)] = by_cause.get((loss, cause), 0.0) + d["duration_s"]
        stops = _stop_counts(down)
        restarts = int((mine.filter(pl.col("state") == STARTING)["start"] > window.start).sum()) if mine.height else 0
        for loss in ("breakdowns", "setup_adjustment"):
            causes = sorted(c for lo, c in by_cause if lo == loss and c is not None)
            if not causes:
                rows.append(_row(shift_id, line_id, loss, None, 0.0, 0, 0.0 if ict else None))
            for cause in causes:
                seconds = by_cause[(loss, cause)]
                count = stops.get(cause, 0) if loss == "breakdowns" else (restarts if cause == causes[0] else 0)
                rows.append(_row(shift_id, line_id, loss, cause, seconds, count, parts_of(seconds)))
        if by_cause.get(("unknown", None), 0.0) > LOSS_TOLERANCE_S:  # not the us rounding of the stamps
            rows.append(
                _row(
                    shift_id,
                    line_id,
                    "unknown",
                    None,
                    by_cause[("unknown", None)],
                    None,
                    parts_of(by_cause[("unknown", None)]),
                )
            )
        stop_s, stop_n, _ = small_stops(samples, mine, line_id)
        performance_loss = r["actual_production_time_s"] - (ict or 0.0) * r["produced"] if ict else None
        rows.append(_row(shift_id, line_id, "small_stops", "speed 0 in Execute", stop_s, stop_n, parts_of(stop_s)))
        reduced = performance_loss - stop_s if performance_loss is not None else None
        rows.append(
            _row(
                shift_id,
                line_id,
                "reduced_speed",
                None,
                reduced if reduced is not None else 0.0,
                None,
                parts_of(reduced) if reduced is not None else None,
            )
        )
        startup, restarts_with = startup_rejects(samples, window, line_id)
        startup = min(startup, int(r["reject"]))  # never more than the shift's rejects (a restart in a break)
        rows.append(
            _row(shift_id, line_id, "startup_rejects", None, startup * (ict or 0.0), restarts_with, float(startup))
        )
        production = int(r["reject"]) - startup
        rows.append(
            _row(shift_id, line_id, "production_rejects", None, production * (ict or 0.0), None, float(production))
        )
    return pl.DataFrame(rows, schema=FACT_LOSSES)


def _stop_counts(down: pl.DataFrame) -> dict[str, int]:
    """Stops (runs of non-production intervals) per cause of their first reason, as `fact_downtime` counts them."""
    counts: dict[str, int] = {}
    previous_end = None
    for d in down.sort("start").iter_rows(named=True):
        if d["time_element"] in ("fault", "stop") and d["start"] != previous_end:
            cause = reason_category(d["stop_reason"])
            counts[cause] = counts.get(cause, 0) + 1
        previous_end = d["end"]
    return counts


#: How far the losses may be from `fact_oee_shift` (seconds; float sums of microsecond durations).
LOSS_TOLERANCE_S = 1e-3


def loss_totals_problems(losses: pl.DataFrame, oee: pl.DataFrame) -> list[str]:
    """Where the losses do not add up to `fact_oee_shift`: availability loss = breakdowns + setup (+ unknown),
    performance loss = small stops + reduced speed, rejects = start-up + production rejects, and PBT minus
    every loss = ideal cycle time x good."""
    problems = []
    for r in oee.iter_rows(named=True):
        where = f"{r['shift_id']} {r['line_id']}"
        mine = losses.filter((pl.col("shift_id") == r["shift_id"]) & (pl.col("line_id") == r["line_id"]))
        if not mine.height:
            problems.append(f"{where}: no losses")
            continue

        def total(factor: str, column: str = "seconds") -> float:
            return float(mine.filter(pl.col("oee_factor") == factor)[column].fill_null(0).sum())  # noqa: B023 - called inside this iteration only

        availability_loss = r["planned_busy_time_s"] - r["actual_production_time_s"]
        if abs(total("availability") - availability_loss) > LOSS_TOLERANCE_S:
            problems.append(
                f"{where}: breakdowns + setup = {total('availability'):.3f} s, PBT - APT = {availability_loss:.3f} s"
            )
        ict = r["ideal_cycle_time_s"]
        if ict:
            performance_loss = r["actual_production_time_s"] - ict * r["produced"]
            if abs(total("performance") - performance_loss) > LOSS_TOLERANCE_S:
                problems.append(
                    f"{where}: small stops + reduced speed = {total('performance'):.3f} s, APT - ICT x produced = "
                    f"{performance_loss:.3f} s"
                )
            fully_productive = r["planned_busy_time_s"] - float(mine["seconds"].sum())
            if abs(fully_productive - ict * r["good"]) > LOSS_TOLERANCE_S:
                problems.append(
                    f"{where}: PBT - losses = {fully_productive:.3f} s, ICT x good = {ict * r['good']:.3f} s"
                )
        if round(total("quality", "parts")) != r["reject"]:
            problems.append(
                f"{where}: start-up + production rejects = {total('quality', 'parts'):.0f}, rejects = {r['reject']}"
            )
    return problems
