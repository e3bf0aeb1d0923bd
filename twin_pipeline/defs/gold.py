"""Gold: OEE per line and shift (ISO 22400-2, as defined once in `twin_pipeline/oee.py`).

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg
import polars as pl

from twin_pipeline.shift_assets import BRONZE_WITH_PREVIOUS, CALENDAR, bronze_with_previous, shift_asset
from twin_pipeline.delta_io import replace_shifts
from twin_pipeline.layers import layer_path, read_shifts
from twin_pipeline.oee import OeeInputs, oee, roll_up
from twin_pipeline.profiles import LakeResource

#: Unknown state time a shift may have and still be final: the first sample after a start-up can
#: trail the shift start by a scan (the PLC stamps same-instant changes 1 us apart).
UNKNOWN_TOLERANCE_S = 1.0

SCHEMA = {
    "shift_id": pl.String, "line_id": pl.String, "shift_name": pl.String,
    "shift_start": pl.Datetime("us", "UTC"), "shift_end": pl.Datetime("us", "UTC"),
    "shift_length_s": pl.Float64, "planned_downtime_s": pl.Float64, "planned_busy_time_s": pl.Float64,
    "actual_production_time_s": pl.Float64, "downtime_fault_s": pl.Float64, "downtime_stop_s": pl.Float64,
    "downtime_setup_s": pl.Float64, "unknown_time_s": pl.Float64, "ideal_cycle_time_s": pl.Float64,
    "produced": pl.Int64, "good": pl.Int64, "reject": pl.Int64, "produced_in_breaks": pl.Int64,
    "production_in_breaks_s": pl.Float64, "availability": pl.Float64,
    "performance": pl.Float64, "quality": pl.Float64, "oee": pl.Float64, "performance_above_1": pl.Boolean,
    "provisional": pl.Boolean, "provisional_reason": pl.String,
}


def _ideal_cycle_time(samples: pl.DataFrame, line_id: str) -> float | None:
    speed = samples.filter((pl.col("line_id") == line_id) & (pl.col("tag") == "Admin.MachDesignSpeed")
                           & pl.col("is_good") & (pl.col("value") > 0)).sort("source_ts")
    return 60.0 / float(speed["value"][-1]) if speed.height else None


@shift_asset(
    key=["gold", "fact_oee_shift"], group="gold",
    deps=[dg.AssetKey(["silver", "state_intervals"]), dg.AssetKey(["silver", "part_counts"]), BRONZE_WITH_PREVIOUS],
    description="OEE per line and shift (ISO 22400-2) over planned busy time (breaks excluded; a line that runs "
                "through a break is reported in *_in_breaks): actual production time, downtime by kind, "
                "produced/good/reject, availability, performance (flagged above 1, never capped), quality, OEE, and "
                "a provisional flag for shifts with outages or unknown time.",
)
def gold_fact_oee_shift(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    rows = []
    for shift_id in context.partition_keys:
        window = CALENDAR.window(shift_id)
        intervals = read_shifts(layer_path(lake.path(), "silver", "state_intervals"), [shift_id])
        counts = read_shifts(layer_path(lake.path(), "silver", "part_counts"), [shift_id])
        samples = bronze_with_previous(lake.path(), shift_id)
        lines = sorted(set(intervals["line_id"].to_list() if intervals.height else [])
                       | set(counts["line_id"].to_list() if counts.height else []))
        for line_id in lines:
            mine = intervals.filter(pl.col("line_id") == line_id) if intervals.height else intervals
            busy = mine.filter(~pl.col("planned_break")) if mine.height else mine
            by_element = {e: float(busy.filter(pl.col("time_element") == e)["duration_s"].sum())
                          for e in ("production", "fault", "stop", "setup", "unknown")} if busy.height else {}
            in_breaks_s = float(mine.filter(pl.col("planned_break") & (pl.col("time_element") == "production"))[
                "duration_s"].sum()) if mine.height else 0.0
            found = counts.filter(pl.col("line_id") == line_id) if counts.height else counts
            count = found.row(0, named=True) if found.height else {
                "produced": 0, "defective": 0, "produced_resets": 0, "produced_in_breaks": 0, "defective_in_breaks": 0}
            produced = int(count["produced"]) - int(count["produced_in_breaks"])  # inside planned busy time
            reject = int(count["defective"]) - int(count["defective_in_breaks"])
            inputs = OeeInputs(
                planned_busy_time_s=window.planned_busy_time_s,
                actual_production_time_s=by_element.get("production", 0.0),
                ideal_cycle_time_s=_ideal_cycle_time(samples, line_id),
                produced=produced, good=produced - reject,
            )
            figures = oee(inputs)
            reasons = []
            if not mine.height or bool(mine["in_gap"].any()):
                reasons.append("data gap")
            if by_element.get("unknown", 0.0) > UNKNOWN_TOLERANCE_S:
                reasons.append(f"unknown state {by_element['unknown']:.0f} s")
            if int(count["produced_resets"]) > 0:
                reasons.append("counter reset")
            rows.append({
                "shift_id": shift_id, "line_id": line_id, "shift_name": window.name,
                "shift_start": window.start, "shift_end": window.end, "shift_length_s": window.duration_s,
                "planned_downtime_s": window.planned_downtime_s, "planned_busy_time_s": window.planned_busy_time_s,
                "actual_production_time_s": inputs.actual_production_time_s,
                "downtime_fault_s": by_element.get("fault", 0.0), "downtime_stop_s": by_element.get("stop", 0.0),
                "downtime_setup_s": by_element.get("setup", 0.0), "unknown_time_s": by_element.get("unknown", 0.0),
                "ideal_cycle_time_s": inputs.ideal_cycle_time_s, "produced": inputs.produced, "good": inputs.good,
                "reject": reject, "produced_in_breaks": int(count["produced_in_breaks"]),
                "production_in_breaks_s": in_breaks_s, "availability": figures.availability,
                "performance": figures.performance, "quality": figures.quality, "oee": figures.oee,
                "performance_above_1": figures.performance_above_1,
                "provisional": bool(reasons), "provisional_reason": "; ".join(reasons) or None,
            })
    out = pl.DataFrame(rows, schema=SCHEMA)
    target = layer_path(lake.path(), "gold", "fact_oee_shift")
    version = replace_shifts(target, out, context.partition_keys)
    by_line = {line_id: roll_up(rows) for (line_id,), rows in out.group_by(["line_id"], maintain_order=True)}
    table = "| line | availability | performance | quality | OEE | produced | provisional |\n|---|---|---|---|---|---|---|\n"
    for line_id in sorted(by_line):
        f, mine = by_line[line_id], out.filter(pl.col("line_id") == line_id)
        table += (f"| {line_id} | {_pct(f.availability)} | {_pct(f.performance)} | {_pct(f.quality)} | {_pct(f.oee)} "
                  f"| {int(mine['produced'].sum())} | {int(mine['provisional'].sum())} of {mine.height} |\n")
    plant = roll_up(out)
    headline = {name: round(value, 4) for name in ("availability", "performance", "quality", "oee")
                if (value := getattr(plant, name)) is not None}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": out.height, "delta_version": version, "path": dg.MetadataValue.path(str(target)),
        "provisional_rows": int(out["provisional"].sum()) if out.height else 0, **headline,
        **{f"oee/{line_id}": round(f.oee, 4) for line_id, f in sorted(by_line.items()) if f.oee is not None},
        "by_line": dg.MetadataValue.md(table),
    })


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


@shift_asset(
    key=["gold", "fact_downtime"], group="gold", deps=[dg.AssetKey(["silver", "state_intervals"])],
    description="One row per stop (a run of non-Execute states outside planned breaks) with reason code, reason, "
                "category (fault, starved, blocked, operator, batch), duration and microstop flag.",
)
def gold_fact_downtime(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from twin_pipeline.downtime import stops

    intervals = read_shifts(layer_path(lake.path(), "silver", "state_intervals"), list(context.partition_keys))
    out = stops(intervals)
    target = layer_path(lake.path(), "gold", "fact_downtime")
    version = replace_shifts(target, out, context.partition_keys)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": out.height, "delta_version": version, "path": dg.MetadataValue.path(str(target)),
        "stops": out.height, "microstops": int(out["is_microstop"].sum()) if out.height else 0,
        "fault_stops": int((out["category"] == "fault").sum()) if out.height else 0,
    })


@shift_asset(
    key=["gold", "fact_quality"], group="gold", deps=[BRONZE_WITH_PREVIOUS],
    description="SPC per line and shift: parts measured, mean and sigma of the deviation from nominal, Cp, Cpk "
                "against the PLC's tolerance, out-of-tolerance count.",
)
def gold_fact_quality(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from twin_pipeline.spc import spc_frame

    frames = []
    for shift_id in context.partition_keys:
        frames.append(spc_frame(bronze_with_previous(lake.path(), shift_id), shift_id))
    out = pl.concat(frames)
    target = layer_path(lake.path(), "gold", "fact_quality")
    version = replace_shifts(target, out, context.partition_keys)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": out.height, "delta_version": version, "path": dg.MetadataValue.path(str(target)),
        "out_of_tolerance": int(out["out_of_tolerance"].sum()) if out.height else 0,
    })
