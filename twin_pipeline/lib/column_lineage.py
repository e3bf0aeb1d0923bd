"""Column lineage of the lake: for every column of bronze, silver and gold, the upstream columns it is
computed from, written once (Dagster shows it as each asset's `dagster/column_lineage`, attached in
`defs/partitions.py`; `tests/twin_pipeline/test_column_lineage.py` checks it against the contracts).

Bronze is long: one row per sample, the tag in `tag`, its value in `value`. So that a gold figure
traces back to the PackTags it uses, bronze carries one pseudo-column per tag the pipeline reads,
`value[<tag>]` ("`value` on the rows of that tag", what a pivot of bronze would make a column), each
computed from the edge `raw_samples` columns `value` and `tag`. Silver and gold name these pseudo-
columns. The chain of `fact_oee_shift.oee`, for example:

    oee <- availability, performance, quality
    availability <- actual_production_time_s, planned_busy_time_s
    actual_production_time_s <- silver/state_intervals.duration_s, .time_element, .planned_break
    time_element <- state <- bronze/samples.value[Status.StateCurrent] <- edge/raw_samples.value, .tag
    performance <- ideal_cycle_time_s (<- part_counts.ideal_time_s <- value[Admin.MachDesignSpeed], ...),
                   produced, actual_production_time_s
    produced <- silver/part_counts.produced, .produced_in_breaks <- value[Admin.ProdProcessedCount]
    quality <- good, produced; good <- produced, reject <- value[Admin.ProdDefectiveCount]

Columns derived from the shift calendar alone (shift windows, planned breaks) have no upstream column:
their lineage is empty. Grouping keys (shift_id, line_id) come from the same keys upstream.
"""

from __future__ import annotations

from collections.abc import Iterable

from twin_pipeline.lib.contracts import Table

#: One upstream column: (asset key path "layer/table", e.g. "edge/raw_samples" or "silver/part_counts", column).
Dep = tuple[str, str]

RAW = "edge/raw_samples"
BRONZE = str(Table.BRONZE_SAMPLES)
STATES = str(Table.STATE_INTERVALS)
COUNTS = str(Table.PART_COUNTS)
MEASUREMENTS = str(Table.PART_MEASUREMENTS)
OEE = str(Table.OEE_SHIFT)

STATE = "Status.StateCurrent"
STOP_REASON = "Admin.StopReason.ID"
PRODUCED = "Admin.ProdProcessedCount"
DEFECTIVE = "Admin.ProdDefectiveCount"
DESIGN_SPEED = "Admin.MachDesignSpeed"
DEVIATION = "Quality.LastPartDeviation"
TOLERANCE = "Quality.ToleranceMm"
HEARTBEAT = "Admin.AccTimeSinceReset"  # silences: the simulator's heartbeat, when a line has it
SPEED = "Status.CurMachSpeed"  # silences: a line without heartbeat is judged while it runs at a speed > 0


def tag_column(tag: str) -> str:
    """Bronze's pseudo-column for one tag: `value` on the rows of that tag."""
    return f"value[{tag}]"


def _tag(tag: str) -> Dep:
    return (BRONZE, tag_column(tag))


def _on(table: str, *columns: str) -> tuple[Dep, ...]:
    return tuple((table, c) for c in columns)


def _keys(table: str) -> dict[str, tuple[Dep, ...]]:
    return {"shift_id": _on(table, "shift_id"), "line_id": _on(table, "line_id")}


#: Bronze tags whose values silver and gold read, each a pseudo-column of bronze.
TAGS = (STATE, STOP_REASON, PRODUCED, DEFECTIVE, DESIGN_SPEED, DEVIATION, TOLERANCE, HEARTBEAT, SPEED)

BRONZE_LINEAGE: dict[str, tuple[Dep, ...]] = {
    "shift_id": _on(RAW, "source_ts"),  # the shift whose window holds the sample (or that it is carried into)
    **{c: _on(RAW, c) for c in ("line_id", "tag", "source_ts", "server_ts", "received_ts", "value", "value_text")},
    **{c: _on(RAW, c) for c in ("status_code", "session_id", "seq")},
    "is_good": _on(RAW, "status_code"),
    "carried_in": _on(RAW, "source_ts"),
    **{tag_column(tag): _on(RAW, "value", "tag") for tag in TAGS},
}

STATE_INTERVALS_LINEAGE: dict[str, tuple[Dep, ...]] = {
    "shift_id": _on(BRONZE, "shift_id"),
    "line_id": _on(BRONZE, "line_id"),
    "state": (_tag(STATE),),
    "state_name": _on(STATES, "state"),
    "time_element": _on(STATES, "state"),
    "start": (_tag(STATE), (BRONZE, "source_ts")),
    "end": (_tag(STATE), (BRONZE, "source_ts")),
    "duration_s": _on(STATES, "start", "end"),
    "stop_reason": (_tag(STOP_REASON), (BRONZE, "source_ts"), (STATES, "time_element")),
    "in_gap": (
        ("edge/gaps", "gap_start"),
        ("edge/gaps", "gap_end"),
        (BRONZE, "source_ts"),
        *(_tag(t) for t in (HEARTBEAT, STATE, SPEED, PRODUCED)),
        (STATES, "start"),
    ),
    "planned_break": _on(STATES, "start", "end"),  # against the calendar's breaks
}

PART_COUNTS_LINEAGE: dict[str, tuple[Dep, ...]] = {
    **_keys(BRONZE),
    **{
        f"{name}{suffix}": (_tag(tag), (BRONZE, "source_ts"), _tag(DESIGN_SPEED))
        for name, tag in (("produced", PRODUCED), ("defective", DEFECTIVE))
        for suffix in ("", "_wraps", "_resets", "_glitches", "_in_breaks")
    },
    "good": _on(COUNTS, "produced", "defective"),
    "ideal_time_s": (_tag(PRODUCED), _tag(DESIGN_SPEED), (BRONZE, "source_ts")),
}

PART_MEASUREMENTS_LINEAGE: dict[str, tuple[Dep, ...]] = {
    **_keys(BRONZE),
    "measured_ts": (_tag(DEVIATION), (BRONZE, "source_ts")),
    "deviation_mm": (_tag(DEVIATION),),
    "tolerance_mm": (_tag(TOLERANCE), (BRONZE, "source_ts")),
    "out_of_tolerance": _on(MEASUREMENTS, "deviation_mm", "tolerance_mm"),
}

#: Summed interval durations of one time element inside planned busy time (or, for *_in_breaks, inside breaks).
_TIME_IN = ((STATES, "duration_s"), (STATES, "time_element"), (STATES, "planned_break"))


FACT_OEE_SHIFT_LINEAGE: dict[str, tuple[Dep, ...]] = {
    "shift_id": _on(STATES, "shift_id") + _on(COUNTS, "shift_id"),
    "line_id": _on(STATES, "line_id") + _on(COUNTS, "line_id"),
    **{c: () for c in ("shift_name", "shift_start", "shift_end", "shift_length_s", "planned_downtime_s")},
    "planned_busy_time_s": _on(OEE, "shift_length_s", "planned_downtime_s"),
    "actual_production_time_s": _TIME_IN,
    "downtime_fault_s": _TIME_IN,
    "downtime_stop_s": _TIME_IN,
    "downtime_setup_s": _TIME_IN,
    "unknown_time_s": _TIME_IN,
    "ideal_cycle_time_s": (*_on(COUNTS, "ideal_time_s", "produced", "produced_in_breaks"), _tag(DESIGN_SPEED)),
    "produced": _on(COUNTS, "produced", "produced_in_breaks"),
    "reject": _on(COUNTS, "defective", "defective_in_breaks"),
    "good": _on(OEE, "produced", "reject"),
    "produced_in_breaks": _on(COUNTS, "produced_in_breaks"),
    "production_in_breaks_s": _TIME_IN,
    "availability": _on(OEE, "actual_production_time_s", "planned_busy_time_s"),
    "performance": _on(OEE, "ideal_cycle_time_s", "produced", "actual_production_time_s"),
    "quality": _on(OEE, "good", "produced"),
    "oee": _on(OEE, "availability", "performance", "quality"),
    "performance_above_1": _on(OEE, "performance"),
    "provisional": _on(OEE, "provisional_reason"),
    "provisional_reason": ((STATES, "in_gap"), (OEE, "unknown_time_s"), (COUNTS, "produced_resets")),
}

FACT_DOWNTIME_LINEAGE: dict[str, tuple[Dep, ...]] = {
    **_keys(STATES),
    "stop_start": _on(STATES, "start", "time_element", "planned_break"),
    "stop_end": _on(STATES, "end", "time_element", "planned_break"),
    "duration_s": _on(STATES, "duration_s", "time_element", "planned_break"),
    "reason_code": _on(STATES, "stop_reason"),
    "reason": _on("gold/fact_downtime", "reason_code"),
    "category": _on("gold/fact_downtime", "reason_code"),
    "states": _on(STATES, "state_name"),
    "is_microstop": _on("gold/fact_downtime", "duration_s"),
    "open_at_shift_start": _on(STATES, "start"),
    "open_at_shift_end": _on(STATES, "end"),
    "in_gap": _on(STATES, "in_gap"),
}

FACT_QUALITY_LINEAGE: dict[str, tuple[Dep, ...]] = {
    **_keys(MEASUREMENTS),
    "parts_measured": _on(MEASUREMENTS, "deviation_mm"),
    "mean_mm": _on(MEASUREMENTS, "deviation_mm"),
    "sigma_mm": _on(MEASUREMENTS, "deviation_mm"),
    "tolerance_mm": _on(MEASUREMENTS, "tolerance_mm", "measured_ts"),
    "cp": _on("gold/fact_quality", "tolerance_mm", "sigma_mm"),
    "cpk": _on("gold/fact_quality", "tolerance_mm", "mean_mm", "sigma_mm"),
    "out_of_tolerance": _on(MEASUREMENTS, "out_of_tolerance"),
}

_LOSS = "gold/fact_losses"
_ELEMENTS = ((STATES, "duration_s"), (STATES, "time_element"), (STATES, "state"), (STATES, "planned_break"))
FACT_LOSSES_LINEAGE: dict[str, tuple[Dep, ...]] = {
    **_keys(OEE),
    "loss": (*_ELEMENTS, _tag(SPEED), _tag(STATE)),
    "oee_factor": _on(_LOSS, "loss"),
    "time_element": _on(_LOSS, "loss"),
    "cause": ((STATES, "stop_reason"), _tag(SPEED)),
    "seconds": _ELEMENTS
    + _on(OEE, "planned_busy_time_s", "actual_production_time_s", "ideal_cycle_time_s", "produced", "reject")
    + (_tag(SPEED), _tag(PRODUCED), _tag(DEFECTIVE)),
    "count": ((STATES, "state"), (STATES, "start"), _tag(SPEED), _tag(DEFECTIVE)),
    "parts": _on(_LOSS, "seconds") + _on(OEE, "ideal_cycle_time_s", "reject") + (_tag(DEFECTIVE),),
}

_FAULTS = ((STATES, "time_element"), (STATES, "start"), (STATES, "end"), (STATES, "in_gap"))
_REL = "gold/fact_reliability"
_INJECTED = "edge/injected_events"
FACT_RELIABILITY_LINEAGE: dict[str, tuple[Dep, ...]] = {
    **_keys(STATES),
    "failures": _FAULTS,
    "production_time_s": _on(STATES, "duration_s", "time_element"),
    "fault_time_s": _on(STATES, "duration_s", "time_element"),
    "mtbf_s": _on(_REL, "production_time_s", "failures"),
    "mttr_s": _FAULTS,
    "fit_window_start": (),
    "fit_failures": _FAULTS,
    "fit_censored": _FAULTS,
    "weibull_shape": _FAULTS,
    "weibull_scale": _FAULTS,
    "injected_ttf_distribution": _on(_INJECTED, "distribution", "kind"),
    "injected_ttf_params": _on(_INJECTED, "params", "kind"),
    "injected_weibull_shape": _on(_INJECTED, "params", "kind"),
    "injected_weibull_scale": _on(_INJECTED, "params", "kind"),
    "injected_repair_distribution": _on(_INJECTED, "distribution", "kind"),
    "injected_faults": _on(_INJECTED, "kind", "event_ts"),
    "injected_mean_repair_s": _on(_INJECTED, "value", "kind", "event_ts"),
}

#: From the shift calendar alone: no upstream column.
_NONE: tuple[Dep, ...] = ()
DIM_SHIFT_LINEAGE: dict[str, tuple[Dep, ...]] = {
    c: _NONE
    for c in (
        "shift_id",
        "shift_name",
        "shift_start",
        "shift_end",
        "local_date",
        "duration_s",
        "planned_downtime_s",
        "planned_busy_time_s",
        "timezone",
    )
}
DIM_DATE_LINEAGE: dict[str, tuple[Dep, ...]] = {
    "date": (),
    **{
        c: _on("gold/dim_date", "date") for c in ("year", "quarter", "month", "iso_week", "iso_weekday", "weekday_name")
    },
}
DIM_LINE_LINEAGE: dict[str, tuple[Dep, ...]] = {
    "line_id": _on(BRONZE, "line_id"),
    "design_speed_ppm": (_tag(DESIGN_SPEED), (BRONZE, "source_ts")),
    "tolerance_mm": (_tag(TOLERANCE), (BRONZE, "source_ts")),
    "ideal_cycle_time_s": _on("gold/dim_line", "design_speed_ppm"),
}

#: Every lake table's column lineage by its key ("layer/table"): column -> the upstream columns.
LINEAGE: dict[str, dict[str, tuple[Dep, ...]]] = {
    Table.BRONZE_SAMPLES: BRONZE_LINEAGE,
    Table.STATE_INTERVALS: STATE_INTERVALS_LINEAGE,
    Table.PART_COUNTS: PART_COUNTS_LINEAGE,
    Table.PART_MEASUREMENTS: PART_MEASUREMENTS_LINEAGE,
    Table.OEE_SHIFT: FACT_OEE_SHIFT_LINEAGE,
    Table.DOWNTIME: FACT_DOWNTIME_LINEAGE,
    Table.QUALITY: FACT_QUALITY_LINEAGE,
    Table.RELIABILITY: FACT_RELIABILITY_LINEAGE,
    Table.DIM_SHIFT: DIM_SHIFT_LINEAGE,
    Table.DIM_DATE: DIM_DATE_LINEAGE,
    Table.DIM_LINE: DIM_LINE_LINEAGE,
    Table.LOSSES: FACT_LOSSES_LINEAGE,
}


def upstream(table: str, column: str, lineage: dict[str, dict[str, tuple[Dep, ...]]] = LINEAGE) -> set[Dep]:
    """Every column `table.column` is computed from, transitively (its own table's columns included)."""
    seen: set[Dep] = set()
    todo: list[Dep] = list(lineage.get(table, {}).get(column, ()))
    while todo:
        dep = todo.pop()
        if dep in seen:
            continue
        seen.add(dep)
        todo.extend(lineage.get(dep[0], {}).get(dep[1], ()))
    return seen


def tags_of(deps: Iterable[Dep]) -> set[str]:
    """The PackTags among upstream columns (bronze's `value[<tag>]` pseudo-columns)."""
    return {c[len("value[") : -1] for t, c in deps if t == BRONZE and c.startswith("value[") and c.endswith("]")}
