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

import polars as pl

from plc.tagmap import PackMLState as S

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
    performance = (_ratio(x.ideal_cycle_time_s * x.produced, x.actual_production_time_s)
                   if x.ideal_cycle_time_s is not None else None)
    quality = _ratio(x.good, x.produced)
    parts = (availability, performance, quality)
    value = parts[0] * parts[1] * parts[2] if all(p is not None for p in parts) else None  # type: ignore[operator]
    return OeeFigures(availability, performance, quality, value, performance is not None and performance > 1.0)


def roll_up(rows: pl.DataFrame) -> OeeFigures:
    """OEE over several `fact_oee_shift` rows (lines, shifts): times and counts summed, ratios
    recomputed, never averaged; performance is the summed ideal time (ideal cycle time x produced)
    over the summed APT."""
    if not rows.height:
        return oee(OeeInputs(0.0, 0.0, None, 0, 0))
    t = rows.select(pl.col("planned_busy_time_s", "actual_production_time_s", "produced", "good").sum()).row(0, named=True)
    cycle = rows.filter(pl.col("ideal_cycle_time_s").is_not_null())
    ideal_s = float((cycle["ideal_cycle_time_s"] * cycle["produced"]).sum())
    produced = int(t["produced"])
    # an equivalent single cycle time reproduces the summed ideal time through the one OEE definition
    cycle_time = ideal_s / produced if produced and cycle.height else None
    return oee(OeeInputs(t["planned_busy_time_s"], t["actual_production_time_s"], cycle_time, produced, int(t["good"])))
