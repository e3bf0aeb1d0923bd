"""Asset checks on gold `fact_oee_shift`, per OEE engine (the Spark job reports the first two itself
through Pipes).

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg
import polars as pl

from twin_pipeline.defs.check_results import provisional_unless, shift_ids, shift_rows
from twin_pipeline.defs.partitions import CALENDAR, SHIFTS
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.settings import oee_engine
from twin_pipeline.lib.transforms.ground_truth import injected_fault_seconds
from twin_pipeline.resources.lake import LakeResource


@dg.asset_check(
    asset=dg.AssetKey(Table.OEE_SHIFT.asset_path),
    partitions_def=SHIFTS,
    description="OEE invariants: ratios in [0, 1] (performance may exceed 1: flagged), OEE = A x P x Q, "
    "good + reject = produced, times add up to the shift.",
)
def oee_invariants(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    rows = shift_rows(lake, Table.OEE_SHIFT, context)
    problems = []
    for r in rows.iter_rows(named=True):
        where = f"{r['shift_id']} {r['line_id']}"
        for name in ("availability", "quality"):
            if r[name] is not None and not 0.0 <= r[name] <= 1.0 + 1e-9:
                problems.append(f"{where}: {name} {r[name]:.4f} outside [0, 1]")
        if (
            None not in (r["availability"], r["performance"], r["quality"], r["oee"])
            and abs(r["oee"] - r["availability"] * r["performance"] * r["quality"]) > 1e-9
        ):
            problems.append(f"{where}: OEE is not A x P x Q")
        if r["good"] + r["reject"] != r["produced"]:
            problems.append(f"{where}: good + reject != produced")
        accounted = sum(
            r[c]
            for c in (
                "actual_production_time_s",
                "downtime_fault_s",
                "downtime_stop_s",
                "downtime_setup_s",
                "unknown_time_s",
                "planned_downtime_s",
            )
        )
        if abs(accounted - r["shift_length_s"]) > 1e-3:
            problems.append(f"{where}: time elements sum to {accounted:.3f} s, shift lasts {r['shift_length_s']:.3f} s")
    return provisional_unless(
        "oee_invariants", context, lake, not problems, {"problems": "; ".join(problems) or "none"}
    )


@dg.asset_check(
    asset=dg.AssetKey(Table.OEE_SHIFT.asset_path),
    partitions_def=SHIFTS,
    description="Performance above 1 (more parts than the ideal rate allows in the production time): a "
    "wrong design speed in the PLC or a counter fault. Flagged, never capped.",
)
def performance_at_most_1(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    rows = shift_rows(lake, Table.OEE_SHIFT, context)
    above = rows.filter(pl.col("performance_above_1"))
    listed = [f"{r['shift_id']} {r['line_id']}: {r['performance']:.3f}" for r in above.iter_rows(named=True)]
    return dg.AssetCheckResult(
        passed=not listed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"performance_above_1": "; ".join(listed) or "none"},
    )


#: Per fault, how far the PLC's fault time may differ from the injected one: the Clearing state after the
#: Clear command (3 s by default) plus a little scan latency.
FAULT_TOLERANCE_S = 5.0


@dg.asset_check(
    asset=dg.AssetKey(Table.OEE_SHIFT.asset_path),
    partitions_def=SHIFTS,
    additional_deps=[dg.AssetKey(["edge", "injected_events"])],
    description="Ground truth: fault downtime in gold against the faults the variability engine injected "
    f"(fault_start -> fault_end), within {FAULT_TOLERANCE_S:g} s per fault; lines with no injected fault in "
    "the last day (no engine, e.g. a real PLC) are not compared.",
)
def fault_downtime_matches_injections(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    gold = shift_rows(lake, Table.OEE_SHIFT, context)
    problems, compared, edges = [], {}, lake.edge_source()
    for shift_id in shift_ids(context):
        window = CALENDAR.window(shift_id)
        injected = injected_fault_seconds(edges, window)
        for r in gold.filter(pl.col("shift_id") == shift_id).iter_rows(named=True):
            if r["line_id"] not in injected:  # no engine drives this line's faults: nothing to compare with
                continue
            seconds, faults = injected[r["line_id"]]
            compared[f"{shift_id} {r['line_id']}"] = (
                f"gold {r['downtime_fault_s']:.1f} s, injected {seconds:.1f} s ({faults})"
            )
            if abs(r["downtime_fault_s"] - seconds) > FAULT_TOLERANCE_S * faults + 1.0:
                problems.append(
                    f"{shift_id} {r['line_id']}: gold {r['downtime_fault_s']:.1f} s vs injected {seconds:.1f} s"
                )
    return provisional_unless(
        "fault_downtime_matches_injections",
        context,
        lake,
        not problems,
        {"problems": "; ".join(problems) or "none", **compared},
    )


@dg.definitions
def gold_checks() -> dg.Definitions:
    """The checks that read gold OEE where Dagster can: all three with the polars engine; with Spark the job
    reports `oee_invariants` and `performance_at_most_1` itself through Pipes; with Databricks gold lives in
    the cluster's lake, so the ground-truth comparison is not made here. (A module with a `@dg.definitions`
    function contributes only what it returns.)"""
    checks = {
        "polars": [oee_invariants, performance_at_most_1, fault_downtime_matches_injections],
        "spark": [fault_downtime_matches_injections],
        "databricks": [],
    }[oee_engine()]
    return dg.Definitions(asset_checks=checks)
