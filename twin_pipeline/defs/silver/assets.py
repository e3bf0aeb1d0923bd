"""Silver per shift: state intervals and part counts per line.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg
import polars as pl

from twin_pipeline.defs.partitions import BRONZE, CALENDAR, publish, report_per_shift, shift_asset
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.edge_source import plc_gaps
from twin_pipeline.lib.lake_io import bronze_by_shift
from twin_pipeline.lib.quality.silences import SILENCE_TAGS, line_silences
from twin_pipeline.lib.settings import oee_engine
from twin_pipeline.lib.transforms.counters import COUNT_TAGS, DESIGN_SPEED_TAG, part_counts
from twin_pipeline.lib.transforms.spc import SPC_TAGS, part_measurements
from twin_pipeline.lib.transforms.states import REASON_TAG, STATE_TAG, state_intervals
from twin_pipeline.resources.lake import LakeResource


def _lines(samples: pl.DataFrame) -> list[str]:
    return sorted(samples["line_id"].unique().to_list())


@shift_asset(
    key=Table.STATE_INTERVALS.asset_path,
    group="silver",
    oee_first=True,
    deps=[BRONZE],
    description="PackML state intervals per line, clipped to the shift, with time element, stop reason and "
    "gap flag (a collector outage, or a silent heartbeat or running line; the state at the shift start is "
    "the carried-in one).",
)
def silver_state_intervals(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    frames = []
    tags = list(dict.fromkeys([STATE_TAG, REASON_TAG, *SILENCE_TAGS]))
    first, last = CALENDAR.window(context.partition_keys[0]), CALENDAR.window(context.partition_keys[-1])
    bronze = bronze_by_shift(lake.path(), context.partition_keys, tags)
    gaps = lake.edge_source().gaps(first.start, last.end)
    for shift_id, samples in bronze.items():
        window = CALENDAR.window(shift_id)
        silences = [(g.line_id, g.start, g.end) for g in line_silences(samples, window)]
        frames.append(state_intervals(samples, window, _lines(samples), plc_gaps(gaps, window) + silences))
    out = pl.concat(frames)
    report_per_shift(context, out, lambda rows: {"in_gap_intervals": int(rows["in_gap"].sum())})
    return dg.MaterializeResult(metadata=publish(lake.path(), Table.STATE_INTERVALS, out, context.partition_keys))


@shift_asset(
    key=Table.PART_COUNTS.asset_path,
    group="silver",
    oee_first=True,
    deps=[BRONZE],
    description="Produced and defective parts per line and shift, from PLC counter increments that survive "
    "UInt32 wraps and PLC restarts (counted, so checks can explain them).",
)
def silver_part_counts(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    bronze = bronze_by_shift(lake.path(), context.partition_keys, [*COUNT_TAGS.values(), DESIGN_SPEED_TAG])
    out = pl.concat([part_counts(samples, CALENDAR.window(shift_id)) for shift_id, samples in bronze.items()])
    report_per_shift(
        context,
        out,
        lambda rows: {"produced": int(rows["produced"].sum()), "counter_resets": int(rows["produced_resets"].sum())},
    )
    return dg.MaterializeResult(metadata=publish(lake.path(), Table.PART_COUNTS, out, context.partition_keys))


@shift_asset(
    key=Table.PART_MEASUREMENTS.asset_path,
    group="silver",
    deps=[BRONZE],
    description="One row per inspected part: its measured deviation from nominal, the tolerance in effect, and "
    "whether it was out of tolerance (the PLC rejects exactly those).",
)
def silver_part_measurements(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    bronze = bronze_by_shift(lake.path(), context.partition_keys, SPC_TAGS)
    out = pl.concat([part_measurements(samples, shift_id) for shift_id, samples in bronze.items()])
    report_per_shift(context, out, lambda rows: {"out_of_tolerance": int(rows["out_of_tolerance"].sum())})
    return dg.MaterializeResult(metadata=publish(lake.path(), Table.PART_MEASUREMENTS, out, context.partition_keys))


@dg.definitions
def silver_assets() -> dg.Definitions:
    """These assets in polars; under the Spark engines the medallion job writes the same tables
    (`defs/gold/oee.py`). (A module with a `@dg.definitions` function contributes only what it returns.)"""
    return dg.Definitions(
        assets=[silver_state_intervals, silver_part_counts, silver_part_measurements]
        if oee_engine() == "polars"
        else []
    )
