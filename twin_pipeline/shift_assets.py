"""What every shift-partitioned asset shares: the calendar's partitions, the decorator arguments,
and reading a shift's bronze samples (its own and the carried-in values it starts with)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from twin_pipeline.layers import layer_path, read_shifts
from twin_pipeline.delta_io import replace_shifts
from twin_pipeline.schemas import BRONZE_SAMPLES, TABLES, column_schema
from twin_pipeline.shift_calendar import load_calendar

CALENDAR = load_calendar()
SHIFTS = CALENDAR.partitions_def()
BRONZE = dg.AssetKey(["bronze", "samples"])


def shift_asset(*, key: Sequence[str], group: str, deps: Sequence[Any], description: str) -> Callable[..., Any]:
    """`@dg.asset` for a shift-partitioned polars/Delta asset; a range of shifts runs as one run."""
    return dg.asset(key=list(key), deps=list(deps), partitions_def=SHIFTS,
                    backfill_policy=dg.BackfillPolicy.single_run(), group_name=group,
                    kinds={"polars", "deltalake"}, owners=["team:data"], description=description,
                    metadata={"dagster/column_schema": column_schema("/".join(key)), "partitioned_by": "shift_id"})


def read_bronze(lake: Path, shift_id: str, tags: Sequence[str] | None = None,
                columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Bronze samples of `shift_id`, carried-in rows included; only `tags` and `columns` when given (read
    pushed down)."""
    path = layer_path(lake, "bronze", "samples")
    if tags is None and columns is None:
        return read_shifts(path, [shift_id])
    if not (path / "_delta_log").exists():
        empty = pl.DataFrame(schema=BRONZE_SAMPLES)
        return empty.select(columns) if columns is not None else empty
    return read_shifts(path, [shift_id], columns, pl.col("tag").is_in(list(tags)) if tags is not None else None)


def publish(lake: Path, table: str, frame: pl.DataFrame, shift_ids: Sequence[str]) -> dict[str, Any]:
    """Replace these shifts of `table` ("layer/name") with `frame`, which must have the table's contract
    schema; returns the metadata every table asset reports (rows, Delta version, path)."""
    if frame.schema != TABLES[table]:
        raise TypeError(f"{table}: rows do not have the contract schema of twin_pipeline/schemas.py: "
                        f"{dict(frame.schema)} != {dict(TABLES[table])}")
    target = lake / table
    version = replace_shifts(target, frame, shift_ids)
    return {"dagster/row_count": frame.height, "delta_version": version, "path": dg.MetadataValue.path(str(target))}
