"""Asset checks per shift partition.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg
import polars as pl

from twin_pipeline.shift_assets import SHIFTS
from twin_pipeline.layers import layer_path, read_shifts
from twin_pipeline.profiles import LakeResource


def _shift_ids(context: dg.AssetCheckExecutionContext) -> list[str]:
    """The shift, or every shift of a single-run backfill range (evaluated together)."""
    key_range = context.partition_key_range
    return SHIFTS.get_partition_keys_in_range(key_range)


def _rows(lake: LakeResource, layer: str, table: str, context: dg.AssetCheckExecutionContext) -> pl.DataFrame:
    return read_shifts(layer_path(lake.path(), layer, table), _shift_ids(context))


@dg.asset_check(asset=dg.AssetKey(["bronze", "samples"]), partitions_def=SHIFTS, blocking=True,
                description="No two rows share (line, tag, source_ts).")
def bronze_no_duplicates(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    rows = _rows(lake, "bronze", "samples", context)
    dupes = int(rows.select("shift_id", "line_id", "tag", "source_ts").is_duplicated().sum()) if rows.height else 0
    return dg.AssetCheckResult(passed=dupes == 0, metadata={"duplicate_rows": dupes, "rows": rows.height})


@dg.asset_check(asset=dg.AssetKey(["silver", "part_counts"]), partitions_def=SHIFTS,
                description="Counter resets (PLC restarts) and implausible jumps are explained, never silent.")
def part_counters_monotonic(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    rows = _rows(lake, "silver", "part_counts", context)
    resets = int(rows["produced_resets"].sum() + rows["defective_resets"].sum()) if rows.height else 0
    glitches = int(rows["produced_glitches"].sum() + rows["defective_glitches"].sum()) if rows.height else 0
    return dg.AssetCheckResult(
        passed=resets == 0 and glitches == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"counter_resets": resets, "counter_glitches": glitches,
                  "explanation": "a reset is a PLC restart (counted from 0 again); a glitch is a jump no line can make"},
    )


@dg.asset_check(asset=dg.AssetKey(["gold", "fact_oee_shift"]), partitions_def=SHIFTS,
                description="OEE invariants: ratios in [0, 1] (performance may exceed 1: flagged), OEE = A x P x Q, "
                            "good + reject = produced, times add up to the shift.")
def oee_invariants(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    rows = _rows(lake, "gold", "fact_oee_shift", context)
    problems = []
    for r in rows.iter_rows(named=True):
        where = f"{r['shift_id']} {r['line_id']}"
        for name in ("availability", "quality"):
            if r[name] is not None and not 0.0 <= r[name] <= 1.0 + 1e-9:
                problems.append(f"{where}: {name} {r[name]:.4f} outside [0, 1]")
        if None not in (r["availability"], r["performance"], r["quality"], r["oee"]) and \
                abs(r["oee"] - r["availability"] * r["performance"] * r["quality"]) > 1e-9:
            problems.append(f"{where}: OEE is not A x P x Q")
        if r["good"] + r["reject"] != r["produced"]:
            problems.append(f"{where}: good + reject != produced")
        accounted = sum(r[c] for c in ("actual_production_time_s", "downtime_fault_s", "downtime_stop_s",
                                       "downtime_setup_s", "unknown_time_s", "planned_downtime_s"))
        if abs(accounted - r["shift_length_s"]) > 1e-3:
            problems.append(f"{where}: time elements sum to {accounted:.3f} s, shift lasts {r['shift_length_s']:.3f} s")
    above = [r["line_id"] for r in rows.iter_rows(named=True) if r["performance_above_1"]]
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": "; ".join(problems) or "none", "performance_above_1": ", ".join(above) or "none"},
    )


#: Per fault, how far the PLC's fault time may differ from the injected one: the Clearing state after the
#: Clear command (3 s by default) plus a little scan latency.
FAULT_TOLERANCE_S = 5.0


@dg.asset_check(asset=dg.AssetKey(["gold", "fact_oee_shift"]), partitions_def=SHIFTS,
                additional_deps=[dg.AssetKey(["edge", "injected_events"])],
                description="Ground truth: fault downtime in gold against the faults the variability engine injected "
                            f"(fault_start -> fault_end), within {FAULT_TOLERANCE_S:g} s per fault.")
def fault_downtime_matches_injections(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    from twin_pipeline.shift_assets import CALENDAR
    from twin_pipeline.ground_truth import injected_fault_seconds

    gold = _rows(lake, "gold", "fact_oee_shift", context)
    problems, compared = [], {}
    for shift_id in _shift_ids(context):
        window = CALENDAR.window(shift_id)
        injected = injected_fault_seconds(lake.path(), window)
        for r in gold.filter(pl.col("shift_id") == shift_id).iter_rows(named=True):
            seconds, faults = injected.get(r["line_id"], (0.0, 0))
            compared[f"{shift_id} {r['line_id']}"] = f"gold {r['downtime_fault_s']:.1f} s, injected {seconds:.1f} s ({faults})"
            if abs(r["downtime_fault_s"] - seconds) > FAULT_TOLERANCE_S * faults + 1.0:
                problems.append(f"{shift_id} {r['line_id']}: gold {r['downtime_fault_s']:.1f} s vs injected {seconds:.1f} s")
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"problems": "; ".join(problems) or "none", **compared})
