"""Gold: OEE per line and shift (ISO 22400-2, as defined once in `twin_pipeline/lib/transforms/oee.py`; the asset is
in `oee.py` beside this module, per engine), downtime, quality and reliability.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg
import polars as pl

from edge_collector.schemas import edge_table_path
from twin_pipeline.defs.partitions import CALENDAR, publish, shift_asset
from twin_pipeline.lib.calendar.shift_calendar import previous_shift
from twin_pipeline.lib.contracts import FACT_RELIABILITY, Table, table_path
from twin_pipeline.lib.lake_io import read_shifts, scan_edge
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
    return dg.MaterializeResult(
        metadata={
            **publish(lake.path(), Table.DOWNTIME, out, context.partition_keys),
            "stops": out.height,
            "microstops": int(out["is_microstop"].sum()),
            "fault_stops": int((out["category"] == "fault").sum()),
        }
    )


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
    return dg.MaterializeResult(
        metadata={
            **publish(lake.path(), Table.QUALITY, out, context.partition_keys),
            "out_of_tolerance": int(out["out_of_tolerance"].sum()),
        }
    )


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
    for shift_id in context.partition_keys:
        window = CALENDAR.window(shift_id)
        history = [window]
        for _ in range(RELIABILITY_LOOKBACK_SHIFTS - 1):
            history.append(previous_shift(CALENDAR, history[-1]))
        intervals = read_shifts(table_path(lake.path(), Table.STATE_INTERVALS), [w.shift_id for w in history])
        events = scan_edge(
            edge_table_path(lake.path(), "injected_events"),
            "injected_events",
            "event_ts",
            history[-1].start,
            window.end,
        ).collect()
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
    return dg.MaterializeResult(
        metadata={
            **publish(lake.path(), Table.RELIABILITY, out, context.partition_keys),
            "failures": int(out["failures"].sum()),
            "injected_faults": int(out["injected_faults"].sum()),
            **{
                f"weibull_shape/{r['line_id']}": round(r["weibull_shape"], 3)
                for r in out.iter_rows(named=True)
                if r["weibull_shape"] is not None and r["shift_id"] == context.partition_keys[-1]
            },
        }
    )
