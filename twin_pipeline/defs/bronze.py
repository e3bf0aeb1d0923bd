"""Bronze per shift: the shift's slice of `raw_samples`, deduplicated, typed, replaced per shift.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""


import dagster as dg
import polars as pl

from edge_collector.schemas import edge_table_path
from twin_pipeline.bronze import bronze_samples
from twin_pipeline.delta_io import replace_shifts, scan_edge
from twin_pipeline.profiles import LakeResource
from twin_pipeline.shift_assets import BRONZE, CALENDAR, shift_asset


@shift_asset(
    key=BRONZE.path, group="bronze",
    deps=[dg.AssetKey(["edge", "raw_samples"]), dg.AssetKey(["edge", "quarantine"])],
    description="The shift's samples from the edge, one row per (line, tag, source_ts), with shift_id and "
                "is_good; re-running a shift replaces exactly that shift.",
)
def bronze_samples_asset(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    raw_path = edge_table_path(lake.path(), "raw_samples")
    quarantine_path = edge_table_path(lake.path(), "quarantine")
    target = lake.path() / "bronze" / "samples"
    frames, duplicates, rows_in, not_good, quarantined = [], 0, 0, 0, 0
    for shift_id in context.partition_keys:
        window = CALENDAR.window(shift_id)
        raw = scan_edge(raw_path, "raw_samples", "source_ts", window.start, window.end).collect()
        frame, stats = bronze_samples(raw, window)
        frames.append(frame)
        duplicates += stats.duplicates
        rows_in += stats.rows_in
        not_good += stats.not_good
        quarantined += scan_edge(quarantine_path, "quarantine", "received_ts", window.start, window.end).select(
            pl.len()).collect().item()
        context.log.info("shift %s: %d rows (%d duplicates removed)", shift_id, frame.height, stats.duplicates)
    out = pl.concat(frames) if frames else pl.DataFrame()
    version = replace_shifts(target, out, context.partition_keys)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": out.height,
        "rows_in": rows_in,
        "duplicates_removed": duplicates,
        "not_good_status": not_good,
        "quarantined_rows": quarantined,
        "delta_version": version,
        "path": dg.MetadataValue.path(str(target)),
        "shifts": len(context.partition_keys),
    })
