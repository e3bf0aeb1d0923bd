"""What every column of every lake table means, with its unit: written once, beside the contracts
(`contracts.py`). Dagster shows them on each asset's page (`dagster/column_schema`, built in
`defs/partitions.py`), and the Power BI model carries the gold ones as its columns' TMDL descriptions
(`lib/integrations/tmdl_descriptions.py` writes them, tests/powerbi checks they agree).

Each description ends with its unit in brackets: `[s]`, `[parts]`, `[mm]`, `[ratio, 1 = 100 %]`,
`[UTC, us]` for timestamps, `[id]`, `[text]`, `[flag]` (booleans), `[code]`, `[count]`.
(The edge tables' columns: `edge_collector/column_descriptions.py`.)
"""

from __future__ import annotations

from twin_pipeline.lib.contracts import Table

UTC = "[UTC, us]"

#: Columns that mean the same in every table they appear in.
COMMON = {
    "shift_id": "Production shift: the plant-local date and start time of the shift, YYYY-MM-DD-HHMM "
    "(twin_pipeline/lib/calendar/shifts.toml) [id]",
    "line_id": "Production line, as named in the edge collector's configuration (e.g. L1) [id]",
}

BRONZE_SAMPLES = {
    **COMMON,
    "tag": "PackTags path of the sample as in plc/tagmap.toml, e.g. Status.StateCurrent, Admin.ProdProcessedCount "
    "[text]",
    "source_ts": f"When the PLC stamped the value (OPC UA SourceTimestamp) {UTC}",
    "server_ts": f"When the OPC UA server stamped the value (ServerTimestamp); null when the server sent none {UTC}",
    "received_ts": f"When the edge collector received the data change {UTC}",
    "value": "The tag's value as a number, in the tag's own unit (plc/tagmap.toml: PackML state number, "
    "parts/min, parts, mm, reason id); booleans 0/1 [unit of the tag]",
    "value_text": "The value of a string tag; null for numeric tags [text]",
    "status_code": "OPC UA StatusCode of the sample; 0 = Good, severity in the top two bits [code]",
    "is_good": "True when the status code's severity is Good; only good samples feed silver [flag]",
    "session_id": "Collector session that wrote the sample (`seed-...` for seeded history) [id]",
    "seq": "Sequence number of the sample, strictly increasing per collector session and line [count]",
    "carried_in": "True for a tag's last value before the shift start, copied into this shift so it knows "
    "the line's state, counters and speed at its start [flag]",
}

SILVER_STATE_INTERVALS = {
    **COMMON,
    "state": "PackML state number (ISA-TR88.00.02: 2 Stopped, 6 Execute, 9 Aborted, 11 Held, ...); null before "
    "the first known state [code]",
    "state_name": "PackML state name (Execute, Held, Aborted, ...); null when the value is no PackML state [text]",
    "time_element": "ISO 22400 time element of the state: production, stop, fault, setup or unknown "
    "(mapping in twin_pipeline/lib/transforms/oee.py) [text]",
    "start": f"Start of the interval, clipped to the shift and cut at planned break boundaries {UTC}",
    "end": f"End of the interval (exclusive) {UTC}",
    "duration_s": "Length of the interval, from the timestamps (DST-safe) [s]",
    "stop_reason": "PLC stop reason (Admin.StopReason.ID) in effect at the interval's start, for non-production "
    "states: 1-999 equipment faults, 1001 starved, 1002 blocked, ...; null in Execute [code]",
    "in_gap": "True when the interval overlaps a collector outage or a silent PLC: its state is the last one "
    "seen, nobody watched [flag]",
    "planned_break": "True when the interval lies inside a planned break of the shift calendar (outside planned "
    "busy time) [flag]",
}

_COUNTER = {"produced": "Admin.ProdProcessedCount", "defective": "Admin.ProdDefectiveCount"}
SILVER_PART_COUNTS = {
    **COMMON,
    "produced": "Parts made in the shift: the sum of Admin.ProdProcessedCount increments, surviving UInt32 "
    "wraps and PLC restarts, planned breaks included [parts]",
    "defective": "Rejected parts in the shift: the sum of Admin.ProdDefectiveCount increments, planned breaks "
    "included [parts]",
    "good": "Good parts: produced - defective [parts]",
    **{
        f"{name}_wraps": f"Times {tag} wrapped past 2^32 - 1 in the shift (the wrapped increment is counted) [count]"
        for name, tag in _COUNTER.items()
    },
    **{
        f"{name}_resets": f"Times {tag} went back to a small value (a PLC restart: the new value is the increment) "
        "[count]"
        for name, tag in _COUNTER.items()
    },
    **{
        f"{name}_glitches": f"Implausibly large forward jumps of {tag} (faster than twice the design speed), "
        "not counted [count]"
        for name, tag in _COUNTER.items()
    },
    "produced_in_breaks": "Of produced, the parts made during planned breaks [parts]",
    "defective_in_breaks": "Of defective, the rejects made during planned breaks [parts]",
    "ideal_time_s": "Ideal time of the parts made in planned busy time: each counter increment times the cycle "
    "time (60 / Admin.MachDesignSpeed) in force when it was counted, summed; null without a design speed [s]",
}

SILVER_PART_MEASUREMENTS = {
    **COMMON,
    "measured_ts": f"When the part was measured (the source timestamp of its Quality.LastPartDeviation sample) {UTC}",
    "deviation_mm": "Measured deviation of the part from nominal (Quality.LastPartDeviation) [mm]",
    "tolerance_mm": "Tolerance in effect when the part was measured (Quality.ToleranceMm); the specification "
    "limits are -tolerance and +tolerance [mm]",
    "out_of_tolerance": "True when |deviation| > tolerance: the PLC rejects exactly these parts [flag]",
}

_SHIFT_WINDOW = {
    "shift_name": "Name of the shift in the calendar (early, late, night) [text]",
    "shift_start": f"Start of the shift {UTC}",
    "shift_end": f"End of the shift (exclusive) {UTC}",
}

FACT_OEE_SHIFT = {
    **COMMON,
    **_SHIFT_WINDOW,
    "shift_length_s": "Length of the shift from its timestamps: 8 h, 7 h or 9 h on DST nights [s]",
    "planned_downtime_s": "Planned breaks of the shift (calendar) [s]",
    "planned_busy_time_s": "Planned busy time (PBT, ISO 22400): shift length - planned downtime [s]",
    "actual_production_time_s": "Actual production time (APT): time in Execute inside planned busy time [s]",
    "downtime_fault_s": "Downtime by equipment failure: Aborting, Aborted, Clearing, inside planned busy time [s]",
    "downtime_stop_s": "Downtime by operational stops: Held, Suspended and their transitions (starved, blocked, "
    "operator holds), inside planned busy time [s]",
    "downtime_setup_s": "Setup / not running: Stopped, Idle, Starting, Resetting, Completing, Complete, inside "
    "planned busy time [s]",
    "unknown_time_s": "Time inside planned busy time with no known state (before the first sample, a value "
    "that is no PackML state) [s]",
    "ideal_cycle_time_s": "Ideal cycle time, weighted by the parts made at each design speed (silver ideal_time_s "
    "/ produced); without parts, 60 / the last design speed (Admin.MachDesignSpeed, parts/min) [s per part]",
    "produced": "Parts made inside planned busy time (silver part_counts: produced - produced_in_breaks) [parts]",
    "good": "Good parts inside planned busy time: produced - reject [parts]",
    "reject": "Rejected parts inside planned busy time (defective - defective_in_breaks) [parts]",
    "produced_in_breaks": "Parts made during planned breaks, reported apart, not in OEE [parts]",
    "production_in_breaks_s": "Time in Execute during planned breaks, reported apart, not in OEE [s]",
    "availability": "Availability = APT / PBT; null when PBT is 0. Never average it: roll up with ratios of "
    "summed times (Power BI: the Availability measure) [ratio, 1 = 100 %]",
    "performance": "Performance (effectiveness) = ideal cycle time x produced / APT; may exceed 1 (flagged, never "
    "capped); null without APT or design speed. Roll up with ratios of sums [ratio, 1 = 100 %]",
    "quality": "Quality = good / produced; null without parts. Roll up with ratios of sums [ratio, 1 = 100 %]",
    "oee": "OEE = availability x performance x quality (ISO 22400-2). Never average it: roll up with ratios of "
    "summed times and counts (Power BI: the OEE measure) [ratio, 1 = 100 %]",
    "performance_above_1": "True when performance > 1: a wrong design speed or a counter fault [flag]",
    "provisional": "True when the shift is not final: a data gap, unknown state time or a counter reset [flag]",
    "provisional_reason": "Why the row is provisional ('data gap', 'unknown state N s', 'counter reset'; "
    "'; '-separated); null when final [text]",
}

FACT_DOWNTIME = {
    **COMMON,
    "stop_start": f"Start of the stop: the first non-Execute interval outside planned breaks {UTC}",
    "stop_end": f"End of the stop: back in Execute, or the shift end {UTC}",
    "duration_s": "Length of the stop inside the shift, planned breaks excluded [s]",
    "reason_code": "PLC stop reason (Admin.StopReason.ID) of the stop's first interval that has one: 1-999 equipment "
    "faults, 1001 starved, 1002 blocked, 1007 batch complete, others operator [code]",
    "reason": "Name of the stop reason from plc/tagmap.toml [stop_reasons] (FaultN when unnamed) [text]",
    "category": "Category of the reason: fault, starved, blocked, operator, batch or none [text]",
    "states": "PackML states the stop went through, in order, '>'-separated (e.g. Aborting>Aborted>Clearing) [text]",
    "is_microstop": "True when the stop lasted less than 60 s (a small stop of the six big losses) [flag]",
    "open_at_shift_start": "True when the stop was already going on at the shift start (continued from the "
    "previous shift) [flag]",
    "open_at_shift_end": "True when the stop was still going on at the shift end (continues in the next shift) [flag]",
    "in_gap": "True when part of the stop lies in a collector outage or a silent PLC [flag]",
}

FACT_QUALITY = {
    **COMMON,
    "parts_measured": "Parts with a Quality.LastPartDeviation measurement in the shift [parts]",
    "mean_mm": "Mean deviation of the measured parts from nominal [mm]",
    "sigma_mm": "Sample standard deviation of the deviations (n - 1); null under two parts [mm]",
    "tolerance_mm": "Tolerance at the shift's last measured part (Quality.ToleranceMm): limits +-tolerance [mm]",
    "cp": "Process capability Cp = 2 x tolerance / (6 sigma); null without spread [ratio]",
    "cpk": "Process capability Cpk = (tolerance - |mean|) / (3 sigma); null without spread [ratio]",
    "out_of_tolerance": "Measured parts with |deviation| above the tolerance in effect at each part [parts]",
}

FACT_RELIABILITY = {
    **COMMON,
    "failures": "Equipment failures that started in the shift (entries into Aborting/Aborted/Clearing) [count]",
    "production_time_s": "Time in Execute in the shift (production time element) [s]",
    "fault_time_s": "Time in fault states (Aborting, Aborted, Clearing) in the shift [s]",
    "mtbf_s": "Observed mean time between failures: production time / failures; null without failures [s]",
    "mttr_s": "Observed mean time to repair: mean length of the shift's failures; null without failures [s]",
    "fit_window_start": f"Start of the oldest shift whose failures the Weibull fit uses (21 shifts back) {UTC}",
    "fit_failures": "Observed times to failure in the fit window [count]",
    "fit_censored": "Right-censored uptimes in the fit window (still running at its end) [count]",
    "weibull_shape": "Fitted Weibull shape of the times to failure (MLE, censored); null under 3 failures [1]",
    "weibull_scale": "Fitted Weibull scale of the times to failure; null under 3 failures [s]",
    "injected_ttf_distribution": "Time-to-failure distribution the variability engine drew from (ground truth, "
    "edge injected_events) [text]",
    "injected_ttf_params": "Its parameters as JSON text, in the engine's units (seconds) [JSON]",
    "injected_weibull_shape": "The injected distribution as a Weibull shape (exponential: 1) [1]",
    "injected_weibull_scale": "The injected distribution as a Weibull scale (exponential: its MTBF) [s]",
    "injected_repair_distribution": "Repair-time distribution the engine drew from [text]",
    "injected_faults": "Faults the engine injected in the shift (fault_start events) [count]",
    "injected_mean_repair_s": "Mean injected repair time of the shift's injected repairs [s]",
}

DIM_SHIFT = {
    "shift_id": COMMON["shift_id"],
    **_SHIFT_WINDOW,
    "local_date": "Plant-local date on which the shift starts (joins dim_date) [date]",
    "duration_s": "Length of the shift from its timestamps: 8 h, 7 h or 9 h on DST nights [s]",
    "planned_downtime_s": "Planned breaks of the shift (calendar) [s]",
    "planned_busy_time_s": "Planned busy time: duration - planned downtime [s]",
    "timezone": "Plant timezone of the calendar (IANA name, e.g. Europe/Berlin) [text]",
}

DIM_DATE = {
    "date": "Plant-local calendar date [date]",
    "year": "Calendar year [year]",
    "quarter": "Calendar quarter, 1-4 [quarter]",
    "month": "Calendar month, 1-12 [month]",
    "iso_week": "ISO 8601 week number, 1-53 [week]",
    "iso_weekday": "ISO 8601 weekday, 1 Monday - 7 Sunday [day]",
    "weekday_name": "English weekday name (Monday ... Sunday) [text]",
}

DIM_LINE = {
    "line_id": COMMON["line_id"],
    "design_speed_ppm": "Latest design speed of the line (Admin.MachDesignSpeed) [parts/min]",
    "tolerance_mm": "Latest quality tolerance of the line (Quality.ToleranceMm) [mm]",
    "ideal_cycle_time_s": "Ideal cycle time: 60 / design speed [s per part]",
}

FACT_LOSSES = {
    **COMMON,
    "loss": "One of the six big losses (breakdowns, setup_adjustment, small_stops, reduced_speed, "
    "startup_rejects, production_rejects), or unknown (state not known: a data gap) [text]",
    "oee_factor": "The OEE factor the loss lowers: availability, performance or quality [text]",
    "time_element": "ISO 22400-2 time element the seconds belong to: ADET (unit delay time), AUST (unit setup "
    "time) or APT (inside actual production time); null for unknown time [text]",
    "cause": "Stop reason category for breakdowns and setup (fault, starved, blocked, operator, batch, none); "
    "'speed 0 in Execute' for small stops; null otherwise [text]",
    "seconds": "Planned busy time lost; for the reject losses parts x ideal cycle time. May be negative for "
    "reduced_speed when performance exceeds 1 [s]",
    "count": "Events: stops for breakdowns, restarts for setup, zero-speed runs that resumed for small stops, "
    "restarts with start-up rejects; null where the loss has no events [count]",
    "parts": "Parts lost: rejected parts for the reject losses, seconds / ideal cycle time otherwise; null "
    "without a design speed [parts]",
}

#: Every lake table's column descriptions, by the table's key (`contracts.TABLES` has the same keys).
DESCRIPTIONS: dict[str, dict[str, str]] = {
    Table.BRONZE_SAMPLES: BRONZE_SAMPLES,
    Table.STATE_INTERVALS: SILVER_STATE_INTERVALS,
    Table.PART_COUNTS: SILVER_PART_COUNTS,
    Table.PART_MEASUREMENTS: SILVER_PART_MEASUREMENTS,
    Table.OEE_SHIFT: FACT_OEE_SHIFT,
    Table.DOWNTIME: FACT_DOWNTIME,
    Table.QUALITY: FACT_QUALITY,
    Table.RELIABILITY: FACT_RELIABILITY,
    Table.DIM_SHIFT: DIM_SHIFT,
    Table.DIM_DATE: DIM_DATE,
    Table.DIM_LINE: DIM_LINE,
    Table.LOSSES: FACT_LOSSES,
}


def describe(table: str, column: str) -> str:
    """The column's description; a KeyError names what is missing (a new column needs one here)."""
    try:
        return DESCRIPTIONS[table][column]
    except KeyError:
        raise KeyError(
            f"{table}.{column} has no description: add it to twin_pipeline/lib/column_descriptions.py"
        ) from None
