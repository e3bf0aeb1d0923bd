"""OEE per ISO 22400-2: the one definition, used by the polars path (and, later, the Spark job).

Time elements per line and shift:
- planned busy time (PBT) = shift length - planned downtime (breaks);
- actual production time (APT) = time in Execute;
- availability = APT / PBT; performance (effectiveness) = ideal cycle time x produced / APT
  (may exceed 1: flagged, never capped); quality = good / produced; OEE = A x P x Q.
Roll-ups sum times and counts and recompute the ratios; ratios are never averaged.

State -> time element (PackML state numbers as in the tag map):
| state | element |
|---|---|
| Execute | actual production time |
| Held, Holding, Unholding, Suspended, Suspending, Unsuspending | downtime: line stops (operational) |
| Aborting, Aborted, Clearing | downtime: fault (equipment failure) |
| Stopped, Stopping, Resetting, Idle, Starting, Completing, Complete | downtime: setup / not running |
| (no data) | unknown: data gap |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from plc.tagmap import PackMLState as S
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.contracts import FACT_OEE_SHIFT
from twin_pipeline.lib.transforms.counters import DESIGN_SPEED_TAG

EXECUTE = int(S.Execute)
TIME_ELEMENT: dict[int, str] = {
    int(S.Execute): "production",
    **{int(s): "stop" for s in (S.Held, S.Holding, S.Unholding, S.Suspended, S.Suspending, S.Unsuspending)},
    **{int(s): "fault" for s in (S.Aborting, S.Aborted, S.Clearing)},
    **{int(s): "setup" for s in (S.Stopped, S.Stopping, S.Resetting, S.Idle, S.Starting, S.Completing, S.Complete)},
}


@dataclass(frozen=True)
class OeeInputs:
    planned_busy_time_s: float
    actual_production_time_s: float
    ideal_cycle_time_s: float | None
    produced: int
    good: int


@dataclass(frozen=True)
class OeeFigures:
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    performance_above_1: bool


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def oee(x: OeeInputs) -> OeeFigures:
    """The ISO 22400-2 figures; None where the denominator is zero (never NaN, never an exception)."""
    availability = _ratio(x.actual_production_time_s, x.planned_busy_time_s)
    performance = (
        _ratio(x.ideal_cycle_time_s * x.produced, x.actual_production_time_s)
        if x.ideal_cycle_time_s is not None
        else None
    )
    quality = _ratio(x.good, x.produced)
    parts = (availability, performance, quality)
    value = parts[0] * parts[1] * parts[2] if all(p is not None for p in parts) else None  # type: ignore[operator]  # all() checked None
    return OeeFigures(availability, performance, quality, value, performance is not None and performance > 1.0)


def percent(value: float | None) -> str:
    """How a ratio is shown (Dagster metadata, the dashboard): one decimal, "n/a" where it is undefined."""
    return "n/a" if value is None else f"{100 * value:.1f} %"


def roll_up(rows: pl.DataFrame) -> OeeFigures:
    """OEE over several `fact_oee_shift` rows (lines, shifts): times and counts summed, ratios
    recomputed, never averaged; performance is the summed ideal time (ideal cycle time x produced)
    over the summed APT."""
    if not rows.height:
        return oee(OeeInputs(0.0, 0.0, None, 0, 0))
    t = rows.select(pl.col("planned_busy_time_s", "actual_production_time_s", "produced", "good").sum()).row(
        0, named=True
    )
    cycle = rows.filter(pl.col("ideal_cycle_time_s").is_not_null())
    ideal_s = float((cycle["ideal_cycle_time_s"] * cycle["produced"]).sum())
    produced = int(t["produced"])
    # an equivalent single cycle time reproduces the summed ideal time through the one OEE definition
    cycle_time = ideal_s / produced if produced and cycle.height else None
    return oee(OeeInputs(t["planned_busy_time_s"], t["actual_production_time_s"], cycle_time, produced, int(t["good"])))


#: The input columns `oee_rows` uses, so that its reads fetch only these (silver state intervals, silver
#: part counts, bronze samples).
INTERVAL_COLUMNS = ("line_id", "time_element", "duration_s", "planned_break", "in_gap")
COUNT_COLUMNS = (
    "line_id",
    "produced",
    "defective",
    "produced_in_breaks",
    "defective_in_breaks",
    "produced_resets",
    "ideal_time_s",
)
SPEED_COLUMNS = ("line_id", "tag", "source_ts", "value", "is_good")

#: Unknown state time a shift may have and still be final: the first sample after a start-up can
#: trail the shift start by a scan (the PLC stamps same-instant changes 1 us apart).
UNKNOWN_TOLERANCE_S = 1.0


def ideal_cycle_time(ideal_time_s: float | None, produced: int, samples: pl.DataFrame, line_id: str) -> float | None:
    """The shift's ideal cycle time: the parts-weighted one (silver's ideal time over the parts made in
    planned busy time) when parts were made, else the cycle time of the last design speed."""
    if ideal_time_s is not None and produced > 0:
        return ideal_time_s / produced
    speed = samples.filter(
        (pl.col("line_id") == line_id) & (pl.col("tag") == DESIGN_SPEED_TAG) & pl.col("is_good") & (pl.col("value") > 0)
    ).sort("source_ts")
    return 60.0 / float(speed["value"][-1]) if speed.height else None


def oee_rows(intervals: pl.DataFrame, counts: pl.DataFrame, samples: pl.DataFrame, window: ShiftWindow) -> pl.DataFrame:
    """`fact_oee_shift` rows of one shift: per line, the time elements from its silver state intervals
    (planned breaks apart), the parts from its silver part counts, the ideal cycle time from its bronze
    design-speed samples, the figures per `oee()`, and why a row is provisional."""
    shift_id = window.shift_id
    rows = []
    lines = sorted(
        set(intervals["line_id"].to_list() if intervals.height else [])
        | set(counts["line_id"].to_list() if counts.height else [])
    )
    for line_id in lines:
        mine = intervals.filter(pl.col("line_id") == line_id) if intervals.height else intervals
        busy = mine.filter(~pl.col("planned_break")) if mine.height else mine
        by_element = (
            {
                e: float(busy.filter(pl.col("time_element") == e)["duration_s"].sum())
                for e in ("production", "fault", "stop", "setup", "unknown")
            }
            if busy.height
            else {}
        )
        in_breaks_s = (
            float(mine.filter(pl.col("planned_break") & (pl.col("time_element") == "production"))["duration_s"].sum())
            if mine.height
            else 0.0
        )
        found = counts.filter(pl.col("line_id") == line_id) if counts.height else counts
        count: dict[str, Any] = (
            found.row(0, named=True)
            if found.height
            else {
                "produced": 0,
                "defective": 0,
                "produced_resets": 0,
                "produced_in_breaks": 0,
                "defective_in_breaks": 0,
                "ideal_time_s": None,
            }
        )
        produced = int(count["produced"]) - int(count["produced_in_breaks"])  # inside planned busy time
        reject = int(count["defective"]) - int(count["defective_in_breaks"])
        inputs = OeeInputs(
            planned_busy_time_s=window.planned_busy_time_s,
            actual_production_time_s=by_element.get("production", 0.0),
            ideal_cycle_time_s=ideal_cycle_time(count.get("ideal_time_s"), produced, samples, line_id),
            produced=produced,
            good=produced - reject,
        )
        figures = oee(inputs)
        reasons = []
        if not mine.height or bool(mine["in_gap"].any()):
            reasons.append("data gap")
        if by_element.get("unknown", 0.0) > UNKNOWN_TOLERANCE_S:
            reasons.append(f"unknown state {by_element['unknown']:.0f} s")
        if int(count["produced_resets"]) > 0:
            reasons.append("counter reset")
        rows.append(
            {
                "shift_id": shift_id,
                "line_id": line_id,
                "shift_name": window.name,
                "shift_start": window.start,
                "shift_end": window.end,
                "shift_length_s": window.duration_s,
                "planned_downtime_s": window.planned_downtime_s,
                "planned_busy_time_s": window.planned_busy_time_s,
                "actual_production_time_s": inputs.actual_production_time_s,
                "downtime_fault_s": by_element.get("fault", 0.0),
                "downtime_stop_s": by_element.get("stop", 0.0),
                "downtime_setup_s": by_element.get("setup", 0.0),
                "unknown_time_s": by_element.get("unknown", 0.0),
                "ideal_cycle_time_s": inputs.ideal_cycle_time_s,
                "produced": inputs.produced,
                "good": inputs.good,
                "reject": reject,
                "produced_in_breaks": int(count["produced_in_breaks"]),
                "production_in_breaks_s": in_breaks_s,
                "availability": figures.availability,
                "performance": figures.performance,
                "quality": figures.quality,
                "oee": figures.oee,
                "performance_above_1": figures.performance_above_1,
                "provisional": bool(reasons),
                "provisional_reason": "; ".join(reasons) or None,
            }
        )
    return pl.DataFrame(rows, schema=FACT_OEE_SHIFT)
