"""Gold dimensions of the star schema: shifts and dates from the calendar, lines from their data.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from twin_pipeline.defs.partitions import CALENDAR, table_metadata
from twin_pipeline.lib.contracts import DIM_DATE, DIM_LINE, DIM_SHIFT, Table, table_path
from twin_pipeline.lib.lake_io import is_table, open_table
from twin_pipeline.lib.location import Location, polars_options
from twin_pipeline.resources.lake import LakeResource

#: How far ahead of today the calendar dimensions reach, so the current and next shifts join.
AHEAD_DAYS = 2


def _write(path: Location, frame: pl.DataFrame, schema: pl.Schema) -> int:
    frame = frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())
    frame.write_delta(
        str(path), mode="overwrite", delta_write_options={"schema_mode": "overwrite"}, **polars_options(path)
    )
    return open_table(path).version()


def shift_rows(until: datetime) -> pl.DataFrame:
    start = datetime.combine(CALENDAR.start, CALENDAR.shifts[0].start, tzinfo=CALENDAR.tz).astimezone(UTC)
    rows = [
        {
            "shift_id": w.shift_id,
            "shift_name": w.name,
            "shift_start": w.start,
            "shift_end": w.end,
            "local_date": w.start.astimezone(CALENDAR.tz).date(),
            "duration_s": w.duration_s,
            "planned_downtime_s": w.planned_downtime_s,
            "planned_busy_time_s": w.planned_busy_time_s,
            "timezone": CALENDAR.timezone,
        }
        for w in CALENDAR.windows(start, until)
    ]
    return pl.DataFrame(rows)


def date_rows(first: date, last: date) -> pl.DataFrame:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return pl.DataFrame({"date": days}).with_columns(
        pl.col("date").dt.year().alias("year"),
        pl.col("date").dt.quarter().alias("quarter"),
        pl.col("date").dt.month().alias("month"),
        pl.col("date").dt.week().alias("iso_week"),
        pl.col("date").dt.weekday().alias("iso_weekday"),
        pl.col("date").dt.strftime("%A").alias("weekday_name"),
    )


@dg.asset(
    key=Table.DIM_SHIFT.asset_path,
    metadata=table_metadata(Table.DIM_SHIFT),
    group_name="gold",
    kinds={"polars", "deltalake"},
    owners=["team:data"],
    description="Every shift from the calendar start to the day after tomorrow: id, name, UTC window, local date, "
    "duration and planned busy time (DST nights last 7 h or 9 h).",
    automation_condition=dg.AutomationCondition.on_cron("0 0 * * *", CALENDAR.timezone),
)
def gold_dim_shift(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    frame = shift_rows(datetime.now(UTC) + timedelta(days=AHEAD_DAYS))
    path = table_path(lake.path(), Table.DIM_SHIFT)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "delta_version": _write(path, frame, DIM_SHIFT),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(
    key=Table.DIM_DATE.asset_path,
    metadata=table_metadata(Table.DIM_DATE),
    group_name="gold",
    kinds={"polars", "deltalake"},
    owners=["team:data"],
    description="Calendar dates (plant-local) with year, quarter, month, ISO week and weekday.",
    automation_condition=dg.AutomationCondition.on_cron("0 0 * * *", CALENDAR.timezone),
)
def gold_dim_date(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    frame = date_rows(CALENDAR.start, datetime.now(CALENDAR.tz).date() + timedelta(days=AHEAD_DAYS))
    path = table_path(lake.path(), Table.DIM_DATE)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "delta_version": _write(path, frame, DIM_DATE),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(
    key=Table.DIM_LINE.asset_path,
    metadata=table_metadata(Table.DIM_LINE),
    deps=[dg.AssetKey(Table.BRONZE_SAMPLES.asset_path)],
    group_name="gold",
    kinds={"polars", "deltalake"},
    owners=["team:data"],
    description="Every line seen in bronze with its latest design speed, ideal cycle time and tolerance.",
)
def gold_dim_line(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    bronze = table_path(lake.path(), Table.BRONZE_SAMPLES)
    tags = {"Admin.MachDesignSpeed": "design_speed_ppm", "Quality.ToleranceMm": "tolerance_mm"}
    if is_table(bronze):
        latest = (
            pl.scan_delta(str(bronze), **polars_options(bronze))
            .filter(pl.col("tag").is_in(list(tags)) & pl.col("is_good"))
            .sort("source_ts")
            .group_by("line_id", "tag")
            .agg(pl.col("value").last())
            .collect()
        )
        frame = latest.pivot(on="tag", index="line_id", values="value").rename(
            {k: v for k, v in tags.items() if k in latest["tag"].to_list()}
        )
    else:
        frame = pl.DataFrame({"line_id": []}, schema={"line_id": pl.String})
    for column in tags.values():
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias(column))
    frame = frame.with_columns((60.0 / pl.col("design_speed_ppm")).alias("ideal_cycle_time_s")).sort("line_id")
    path = table_path(lake.path(), Table.DIM_LINE)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "delta_version": _write(path, frame, DIM_LINE),
            "path": dg.MetadataValue.path(str(path)),
        }
    )
