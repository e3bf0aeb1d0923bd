"""Bronze per shift: the shift's slice of `raw_samples`, deduplicated, typed, replaced per shift.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg
import polars as pl

from edge_collector.schemas import edge_table_path
from twin_pipeline.defs.partitions import BRONZE, CALENDAR, publish, shift_asset
from twin_pipeline.lib.calendar.shift_calendar import previous_shift
from twin_pipeline.lib.contracts import BRONZE_SAMPLES, Table, table_path
from twin_pipeline.lib.lake_io import read_shifts, scan_edge
from twin_pipeline.lib.transforms.bronze import CARRY_LOOKBACK, bronze_samples, typed
from twin_pipeline.resources.lake import LakeResource


@shift_asset(
    key=BRONZE.path,
    group="bronze",
    deps=[dg.AssetKey(["edge", "raw_samples"]), dg.AssetKey(["edge", "quarantine"])],
    description="The shift's samples from the edge, one row per (line, tag, source_ts), with shift_id and "
    "is_good, plus each tag's last value before the shift (carried_in); re-running a shift replaces "
    "exactly that shift.",
)
def bronze_samples_asset(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    raw_path = edge_table_path(lake.path(), "raw_samples")
    quarantine_path = edge_table_path(lake.path(), "quarantine")
    target = table_path(lake.path(), Table.BRONZE_SAMPLES)
    frames: list[pl.DataFrame] = []
    duplicates = rows_in = not_good = quarantined = carried = 0
    for shift_id in context.partition_keys:  # in time order: each shift carries the previous one's values in
        window = CALENDAR.window(shift_id)
        previous_id = previous_shift(CALENDAR, window).shift_id
        if frames and frames[-1].height and frames[-1]["shift_id"][0] == previous_id:
            before = frames[-1]
        else:
            before = read_shifts(target, [previous_id])
            if not before.height:  # the previous shift was never built: look in the edge table
                before = typed(
                    scan_edge(
                        raw_path, "raw_samples", "source_ts", window.start - CARRY_LOOKBACK, window.start
                    ).collect(),
                    previous_id,
                )
        raw = scan_edge(raw_path, "raw_samples", "source_ts", window.start, window.end).collect()
        frame, stats = bronze_samples(raw, window, before)
        frames.append(frame)
        duplicates += stats.duplicates
        rows_in += stats.rows_in
        not_good += stats.not_good
        carried += stats.carried_in
        quarantined += (
            scan_edge(quarantine_path, "quarantine", "received_ts", window.start, window.end)
            .select(pl.len())
            .collect()
            .item()
        )
        context.log.info(
            "shift %s: %d rows (%d carried in, %d duplicates removed)",
            shift_id,
            frame.height,
            stats.carried_in,
            stats.duplicates,
        )
    out = pl.concat(frames) if frames else pl.DataFrame(schema=BRONZE_SAMPLES)
    return dg.MaterializeResult(
        metadata={
            **publish(lake.path(), Table.BRONZE_SAMPLES, out, context.partition_keys),
            "rows_in": rows_in,
            "carried_in": carried,
            "duplicates_removed": duplicates,
            "not_good_status": not_good,
            "quarantined_rows": quarantined,
            "shifts": len(context.partition_keys),
        }
    )
