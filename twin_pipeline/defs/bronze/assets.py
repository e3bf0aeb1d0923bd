"""Bronze per shift: the shift's slice of `raw_samples`, deduplicated, typed, replaced per shift.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg
import polars as pl

from twin_pipeline.defs.partitions import BRONZE, CALENDAR, publish, shift_asset
from twin_pipeline.lib.by_shift import by_window
from twin_pipeline.lib.calendar.shift_calendar import previous_shift
from twin_pipeline.lib.carry_in import rows_before
from twin_pipeline.lib.contracts import BRONZE_SAMPLES, Table
from twin_pipeline.lib.settings import oee_engine, profile
from twin_pipeline.lib.transforms.bronze import bronze_samples
from twin_pipeline.resources.lake import LakeResource


def _bronze_samples(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    edges = lake.edge_source()  # the edges' disks, or the landed raw zone (azure profile)
    windows = [CALENDAR.window(shift_id) for shift_id in context.partition_keys]
    # the edge is read once for the whole range, then cut into shifts in memory
    raw_by_shift = edges.read_by_window("raw_samples", "source_ts", windows)
    quarantined_by_shift = by_window(
        edges.scan("quarantine", "received_ts", windows[0].start, windows[-1].end).select("received_ts").collect(),
        "received_ts",
        windows,
    )
    frames: list[pl.DataFrame] = []
    totals = {"rows_in": 0, "carried_in": 0, "duplicates_removed": 0, "not_good_status": 0, "quarantined_rows": 0}
    for window in windows:  # in time order: each shift carries the previous one's values in
        previous_id = previous_shift(CALENDAR, window).shift_id
        if frames and frames[-1].height and frames[-1]["shift_id"][0] == previous_id:
            before = frames[-1]
        else:
            # the previous shift's bronze, or, when it was never built, the edge rows before the shift
            before = rows_before(lake.path(), edges, window, previous_id)
        frame, stats = bronze_samples(raw_by_shift[window.shift_id], window, before)
        frames.append(frame)
        own = {
            "rows_in": stats.rows_in,
            "carried_in": stats.carried_in,
            "duplicates_removed": stats.duplicates,
            "not_good_status": stats.not_good,
            "quarantined_rows": quarantined_by_shift[window.shift_id].height,
        }
        context.add_asset_metadata({"dagster/row_count": frame.height, **own}, partition_key=window.shift_id)
        totals = {k: totals[k] + v for k, v in own.items()}
    out = pl.concat(frames) if frames else pl.DataFrame(schema=BRONZE_SAMPLES)
    # one line for the run (each shift's figures are on its partition: a log line per shift is an event-log
    # write per shift)
    context.log.info(
        "%d shift(s): %d rows (%d carried in, %d duplicates removed)",
        len(windows),
        out.height,
        totals["carried_in"],
        totals["duplicates_removed"],
    )
    return dg.MaterializeResult(
        metadata={
            **publish(lake.path(), Table.BRONZE_SAMPLES, out, context.partition_keys),
            **totals,  # the run's sums; each shift's own figures are on its partition (they take precedence)
            "shifts": len(context.partition_keys),
        }
    )


def bronze_asset(source: str) -> dg.AssetsDefinition:
    """The bronze asset reading `source`: "edge" (the local profile: the edges' own tables) or "landing" (the
    azure profile: the landed raw zone). Chosen when the definitions load, not when this module is imported."""
    return shift_asset(
        key=BRONZE.path,
        group="bronze",
        oee_first=True,
        deps=[dg.AssetKey([source, "raw_samples"]), dg.AssetKey([source, "quarantine"])],
        description="The shift's samples from the edge, one row per (line, tag, source_ts), with shift_id and "
        "is_good, plus each tag's last value before the shift (carried_in); re-running a shift replaces "
        "exactly that shift.",
    )(_bronze_samples)


#: The local profile's bronze (tests materialize it directly).
bronze_samples_asset = bronze_asset("edge")


@dg.definitions
def bronze_assets() -> dg.Definitions:
    """Bronze in polars, reading the edges (local profile) or the landed raw zone (azure profile); under the
    Spark engines the medallion job writes the same table (`defs/gold/oee.py`). (A module with a
    `@dg.definitions` function contributes only what it returns.)"""
    if oee_engine() != "polars":
        return dg.Definitions()
    return dg.Definitions(assets=[bronze_asset("landing") if profile() == "azure" else bronze_samples_asset])
