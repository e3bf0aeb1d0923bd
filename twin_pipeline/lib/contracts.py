"""The lake's table contracts after the edge: bronze, silver and the gold star schema that Power BI
reads, with each table's key ("layer/table", also its asset key path) and where it lives under the lake.
Written once; the assets write exactly these columns, their Dagster column-schema metadata comes from
here, and the semantic model's contract test reads the gold part.

(The edge tables' contract is `edge_collector/schemas.py`: the collector writes them.)
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl

from twin_pipeline.lib.location import Location

_TS: Any = pl.Datetime("us", "UTC")  # Any: a dict of it and dtype classes is then a valid Schema mapping

BRONZE_SAMPLES = pl.Schema(
    {
        "shift_id": pl.String,
        "line_id": pl.String,
        "tag": pl.String,
        "source_ts": _TS,
        "server_ts": _TS,
        "received_ts": _TS,
        "value": pl.Float64,
        "value_text": pl.String,
        "status_code": pl.Int64,
        "is_good": pl.Boolean,
        "session_id": pl.String,
        "seq": pl.Int64,
        "carried_in": pl.Boolean,
    }
)

SILVER_STATE_INTERVALS = pl.Schema(
    {
        "shift_id": pl.String,
        "line_id": pl.String,
        "state": pl.Int32,
        "state_name": pl.String,
        "time_element": pl.String,
        "start": _TS,
        "end": _TS,
        "duration_s": pl.Float64,
        "stop_reason": pl.Int32,
        "in_gap": pl.Boolean,
        "planned_break": pl.Boolean,
    }
)

SILVER_PART_COUNTS = pl.Schema(
    {
        "shift_id": pl.String,
        "line_id": pl.String,
        "produced": pl.Int64,
        "produced_wraps": pl.Int64,
        "produced_resets": pl.Int64,
        "produced_glitches": pl.Int64,
        "defective": pl.Int64,
        "defective_wraps": pl.Int64,
        "defective_resets": pl.Int64,
        "defective_glitches": pl.Int64,
        "good": pl.Int64,
        "produced_in_breaks": pl.Int64,
        "defective_in_breaks": pl.Int64,
        "ideal_time_s": pl.Float64,
    }
)

SILVER_PART_MEASUREMENTS = pl.Schema(
    {
        "shift_id": pl.String,
        "line_id": pl.String,
        "measured_ts": _TS,
        "deviation_mm": pl.Float64,
        "tolerance_mm": pl.Float64,
        "out_of_tolerance": pl.Boolean,
    }
)

FACT_OEE_SHIFT = pl.Schema(
    {
        "shift_id": pl.String,
        "line_id": pl.String,
        "shift_name": pl.String,
        "shift_start": _TS,
        "shift_end": _TS,
        "shift_length_s": pl.Float64,
        "planned_downtime_s": pl.Float64,
        "planned_busy_time_s": pl.Float64,
        "actual_production_time_s": pl.Float64,
        "downtime_fault_s": pl.Float64,
        "downtime_stop_s": pl.Float64,
        "downtime_setup_s": pl.Float64,
        "unknown_time_s": pl.Float64,
        "ideal_cycle_time_s": pl.Float64,
        "produced": pl.Int64,
        "good": pl.Int64,
        "reject": pl.Int64,
        "produced_in_breaks": pl.Int64,
        "production_in_breaks_s": pl.Float64,
        "availability": pl.Float64,
        "performance": pl.Float64,
        "quality": pl.Float64,
        "oee": pl.Float64,
        "performance_above_1": pl.Boolean,
        "provisional": pl.Boolean,
        "provisional_reason": pl.String,
    }
)

FACT_DOWNTIME = pl.Schema(
    {
        "shift_id": pl.String,
        "line_id": pl.String,
        "stop_start": _TS,
        "stop_end": _TS,
        "duration_s": pl.Float64,
        "reason_code": pl.Int32,
        "reason": pl.String,
        "category": pl.String,
        "states": pl.String,
        "is_microstop": pl.Boolean,
        "open_at_shift_start": pl.Boolean,
        "open_at_shift_end": pl.Boolean,
        "in_gap": pl.Boolean,
    }
)

FACT_QUALITY = pl.Schema(
    {
        "shift_id": pl.String,
        "line_id": pl.String,
        "parts_measured": pl.Int64,
        "mean_mm": pl.Float64,
        "sigma_mm": pl.Float64,
        "tolerance_mm": pl.Float64,
        "cp": pl.Float64,
        "cpk": pl.Float64,
        "out_of_tolerance": pl.Int64,
    }
)

FACT_RELIABILITY = pl.Schema(
    {
        "shift_id": pl.String,
        "line_id": pl.String,
        "failures": pl.Int64,
        "production_time_s": pl.Float64,
        "fault_time_s": pl.Float64,
        "mtbf_s": pl.Float64,
        "mttr_s": pl.Float64,
        "fit_window_start": _TS,
        "fit_failures": pl.Int64,
        "fit_censored": pl.Int64,
        "weibull_shape": pl.Float64,
        "weibull_scale": pl.Float64,
        "injected_ttf_distribution": pl.String,
        "injected_ttf_params": pl.String,
        "injected_weibull_shape": pl.Float64,
        "injected_weibull_scale": pl.Float64,
        "injected_repair_distribution": pl.String,
        "injected_faults": pl.Int64,
        "injected_mean_repair_s": pl.Float64,
    }
)

DIM_SHIFT = pl.Schema(
    {
        "shift_id": pl.String,
        "shift_name": pl.String,
        "shift_start": _TS,
        "shift_end": _TS,
        "local_date": pl.Date,
        "duration_s": pl.Float64,
        "planned_downtime_s": pl.Float64,
        "planned_busy_time_s": pl.Float64,
        "timezone": pl.String,
    }
)

DIM_DATE = pl.Schema(
    {
        "date": pl.Date,
        "year": pl.Int32,
        "quarter": pl.Int8,
        "month": pl.Int8,
        "iso_week": pl.Int8,
        "iso_weekday": pl.Int8,
        "weekday_name": pl.String,
    }
)

DIM_LINE = pl.Schema(
    {
        "line_id": pl.String,
        "design_speed_ppm": pl.Float64,
        "tolerance_mm": pl.Float64,
        "ideal_cycle_time_s": pl.Float64,
    }
)


FACT_LOSSES = pl.Schema(
    {
        "shift_id": pl.String,
        "line_id": pl.String,
        "loss": pl.String,
        "oee_factor": pl.String,
        "time_element": pl.String,
        "cause": pl.String,
        "seconds": pl.Float64,
        "count": pl.Int64,
        "parts": pl.Float64,
    }
)


class Table(StrEnum):
    """Every lake table by its key "layer/table": its asset key path and its folder under the lake root."""

    BRONZE_SAMPLES = "bronze/samples"
    STATE_INTERVALS = "silver/state_intervals"
    PART_COUNTS = "silver/part_counts"
    PART_MEASUREMENTS = "silver/part_measurements"
    OEE_SHIFT = "gold/fact_oee_shift"
    DOWNTIME = "gold/fact_downtime"
    QUALITY = "gold/fact_quality"
    RELIABILITY = "gold/fact_reliability"
    DIM_SHIFT = "gold/dim_shift"
    DIM_DATE = "gold/dim_date"
    DIM_LINE = "gold/dim_line"
    LOSSES = "gold/fact_losses"

    @property
    def asset_path(self) -> list[str]:
        """The asset key path, ["layer", "table"]."""
        return self.value.split("/")


#: Every table's contract by its key; the gold ones form the star schema.
TABLES: dict[str, pl.Schema] = {
    Table.BRONZE_SAMPLES: BRONZE_SAMPLES,
    Table.STATE_INTERVALS: SILVER_STATE_INTERVALS,
    Table.PART_COUNTS: SILVER_PART_COUNTS,
    Table.PART_MEASUREMENTS: SILVER_PART_MEASUREMENTS,
    Table.OEE_SHIFT: FACT_OEE_SHIFT,
    Table.DOWNTIME: FACT_DOWNTIME,
    Table.QUALITY: FACT_QUALITY,
    Table.RELIABILITY: FACT_RELIABILITY,
    Table.DIM_SHIFT: DIM_SHIFT,
    Table.DIM_DATE: DIM_DATE,
    Table.DIM_LINE: DIM_LINE,
    Table.LOSSES: FACT_LOSSES,
}


def table_path(lake: Location | Path | str, key: str) -> Location:
    """Where the table with key "layer/table" lives under the lake root (a folder or an object-store URI)."""
    if key not in TABLES:
        raise KeyError(f"{key!r} is not a lake table; the tables are {', '.join(TABLES)}")
    return Location.of(lake) / key


def schema_of(path: Location | Path) -> pl.Schema | None:
    """The contract schema of the lake table at `path` (`.../<layer>/<table>`), None for a table outside it."""
    return TABLES.get(f"{path.parent.name}/{path.name}")


_SPARK_TYPES = {
    pl.String: "STRING",
    pl.Float64: "DOUBLE",
    pl.Int64: "BIGINT",
    pl.Int32: "INT",
    pl.Int8: "TINYINT",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
}


def spark_ddl(table: str) -> str:
    """The table's contract as a Spark DDL schema string, for the Spark job (which cannot import this)."""

    def spark_type(dtype: pl.DataType) -> str:
        return "TIMESTAMP" if isinstance(dtype, pl.Datetime) else _SPARK_TYPES[dtype.base_type()]

    return ", ".join(f"{name} {spark_type(dtype)}" for name, dtype in TABLES[table].items())
