"""Gold: OEE per line and shift (ISO 22400-2, as defined once in `twin_pipeline/lib/transforms/oee.py`; the asset is
in `oee.py` beside this module, per engine), downtime, quality and reliability.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

from typing import Any

import dagster as dg
import polars as pl

from twin_pipeline.defs.partitions import CALENDAR, publish, report_per_shift, shift_asset
from twin_pipeline.lib.by_shift import split_by_shift
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow, previous_shift
from twin_pipeline.lib.contracts import FACT_RELIABILITY, Table, table_path
from twin_pipeline.lib.lake_io import read_shifts
from twin_pipeline.lib.transforms.downtime import stops
from twin_pipeline.lib.transforms.reliability import failures, fit_weibull, injected
from twin_pipeline.lib.transforms.spc import spc_frame
from twin_pipeline.resources.lake import LakeResource


@shift_asset(
    key=Table.DOWNTIME.asset_path,
    group="gold",
    deps=[dg.AssetKey(Table.STATE_INTERVALS.asset_path)],
    description="One row per stop (a run of non-Execute states outside planned breaks) with reason code, reason, "
    "category (fault, starved, blocked, operator, batch), duration and microstop flag.",
)
def gold_fact_downtime(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    intervals = read_shifts(table_path(lake.path(), Table.STATE_INTERVALS), list(context.partition_keys))
    out = stops(intervals)
    report_per_shift(
        context,
        out,
        lambda rows: {
            "stops": rows.height,
            "microstops": int(rows["is_microstop"].sum()),
            "fault_stops": int((rows["category"] == "fault").sum()),
        },
    )
    return dg.MaterializeResult(metadata=publish(lake.path(), Table.DOWNTIME, out, context.partition_keys))


@shift_asset(
    key=Table.QUALITY.asset_path,
    group="gold",
    deps=[dg.AssetKey(Table.PART_MEASUREMENTS.asset_path)],
    description="SPC per line and shift: parts measured, mean and sigma of the deviation from nominal, Cp, Cpk "
    "against the PLC's tolerance, out-of-tolerance count.",
)
def gold_fact_quality(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    measurements = read_shifts(table_path(lake.path(), Table.PART_MEASUREMENTS), list(context.partition_keys))
    out = pl.concat([spc_frame(measurements, shift_id) for shift_id in context.partition_keys])
    report_per_shift(context, out, lambda rows: {"out_of_tolerance": int(rows["out_of_tolerance"].sum())})
    return dg.MaterializeResult(metadata=publish(lake.path(), Table.QUALITY, out, context.partition_keys))


#: Shifts (this one and those before it) whose failures the Weibull fit uses: a week of the default calendar.
RELIABILITY_LOOKBACK_SHIFTS = 21


@shift_asset(
    key=Table.RELIABILITY.asset_path,
    group="gold",
    deps=[
        dg.AssetDep(
            dg.AssetKey(Table.STATE_INTERVALS.asset_path),
            # the first shifts have fewer before them since the partitions begin at the first shift with data
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-(RELIABILITY_LOOKBACK_SHIFTS - 1), allow_nonexistent_upstream_partitions=True
            ),
        ),
        dg.AssetKey(["edge", "injected_events"]),
    ],
    description="Reliability per line and shift: failures, MTBF (production time per failure), MTTR (fault time per "
    f"failure), and a Weibull fit (right-censored MLE) of the times to failure of the last "
    f"{RELIABILITY_LOOKBACK_SHIFTS} shifts, next to the distribution the variability engine injected.",
)
def gold_fact_reliability(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    rows = []
    histories = {shift_id: fit_history(CALENDAR.window(shift_id)) for shift_id in context.partition_keys}
    # every input read once for the whole range and its lookback, then cut per shift in memory
    earliest = min(h[-1].start for h in histories.values())
    all_ids = sorted({w.shift_id for h in histories.values() for w in h})
    every = read_shifts(table_path(lake.path(), Table.STATE_INTERVALS), all_ids)
    interval_parts = split_by_shift(every)
    all_events = lake.edge_source().read(
        "injected_events",
        "event_ts",
        earliest,
        histories[context.partition_keys[-1]][0].end,
    )
    for shift_id, history in histories.items():
        window = history[0]
        parts = [interval_parts[w.shift_id] for w in reversed(history) if w.shift_id in interval_parts]
        intervals = pl.concat(parts) if parts else every.clear()
        events = all_events.filter((pl.col("event_ts") >= history[-1].start) & (pl.col("event_ts") < window.end))
        mine_all = intervals.filter(pl.col("shift_id") == shift_id)
        for line_id in sorted(mine_all["line_id"].unique().to_list()):
            lookback = intervals.filter(pl.col("line_id") == line_id)
            shift = lookback.filter(pl.col("shift_id") == shift_id)
            seen = failures(lookback)
            in_shift = [(t, r) for t, r in zip(seen.fault_starts, seen.repair_s) if window.start <= t < window.end]
            fit = fit_weibull(seen.times_to_failure_s, seen.censored_s)
            line_events = events.filter(pl.col("line_id") == line_id)
            truth = injected(line_events.filter(pl.col("event_ts") >= window.start))
            ever = injected(line_events)  # the distribution in force, even in a shift without a fault
            production_s = float(shift.filter(pl.col("time_element") == "production")["duration_s"].sum())
            n = len(in_shift)
            rows.append(
                {
                    "shift_id": shift_id,
                    "line_id": line_id,
                    "failures": n,
                    "production_time_s": production_s,
                    "fault_time_s": float(shift.filter(pl.col("time_element") == "fault")["duration_s"].sum()),
                    "mtbf_s": production_s / n if n else None,
                    "mttr_s": sum(r for _, r in in_shift) / n if n else None,
                    "fit_window_start": history[-1].start,
                    "fit_failures": fit.failures,
                    "fit_censored": fit.censored,
                    "weibull_shape": fit.shape,
                    "weibull_scale": fit.scale,
                    "injected_ttf_distribution": ever.ttf_distribution,
                    "injected_ttf_params": ever.ttf_params,
                    "injected_weibull_shape": ever.weibull_shape,
                    "injected_weibull_scale": ever.weibull_scale,
                    "injected_repair_distribution": ever.repair_distribution,
                    "injected_faults": truth.faults,
                    "injected_mean_repair_s": truth.mean_repair_s,
                }
            )
    out = pl.DataFrame(rows, schema=FACT_RELIABILITY)
    report_per_shift(context, out, reliability_metadata)
    return dg.MaterializeResult(metadata=publish(lake.path(), Table.RELIABILITY, out, context.partition_keys))


def fit_history(window: ShiftWindow) -> list[ShiftWindow]:
    """The shift and the ones before it whose failures its Weibull fit uses, newest first."""
    history = [window]
    for _ in range(RELIABILITY_LOOKBACK_SHIFTS - 1):
        history.append(previous_shift(CALENDAR, history[-1]))
    return history


def reliability_metadata(rows: pl.DataFrame) -> dict[str, Any]:
    """A shift's failures, injected faults, and the Weibull shape fitted per line."""
    return {
        "failures": int(rows["failures"].sum()),
        "injected_faults": int(rows["injected_faults"].sum()),
        **{
            f"weibull_shape/{r['line_id']}": round(r["weibull_shape"], 3)
            for r in rows.iter_rows(named=True)
            if r["weibull_shape"] is not None
        },
    }
