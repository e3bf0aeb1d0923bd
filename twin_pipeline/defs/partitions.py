"""What every shift-partitioned asset shares: the calendar's partitions, the decorator arguments and
the metadata a published table reports.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from twin_pipeline.lib.calendar.first_shift import first_shift_start
from twin_pipeline.lib.calendar.shift_calendar import SHIFT_ID_FORMAT, ShiftCalendar, load_calendar
from twin_pipeline.lib.contracts import TABLES, Table
from twin_pipeline.lib.lake_io import replace_shifts


def shift_partitions(
    calendar: ShiftCalendar, end: datetime | None = None, start: datetime | None = None
) -> dg.TimeWindowPartitionsDefinition:
    """Dagster time-window partitions whose keys are the shift ids and whose windows are the shifts, from
    `start` (aware; default the calendar's start) up to the last completed shift, or up to `end`."""
    first = (
        start.astimezone(calendar.tz).replace(tzinfo=None)
        if start is not None
        else datetime.combine(calendar.start, calendar.shifts[0].start)
    )
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=calendar.cron(),
        fmt=SHIFT_ID_FORMAT,
        timezone=calendar.timezone,
        start=first,
        end=end,
    )


CALENDAR = load_calendar()
#: From the first shift with data (TWIN_FIRST_SHIFT, or what `twin up` seeded): lib/calendar/first_shift.py.
SHIFTS = shift_partitions(CALENDAR, start=first_shift_start(CALENDAR))
BRONZE = dg.AssetKey(Table.BRONZE_SAMPLES.asset_path)


def column_schema(table: str) -> dg.TableSchema:
    """The table's contract as Dagster column-schema metadata (shown on the asset page)."""
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in TABLES[table].items()])


def shift_asset(*, key: Sequence[str], group: str, deps: Sequence[Any], description: str) -> Callable[..., Any]:
    """`@dg.asset` for a shift-partitioned polars/Delta asset; a range of shifts runs as one run."""
    return dg.asset(
        key=list(key),
        deps=list(deps),
        partitions_def=SHIFTS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=group,
        kinds={"polars", "deltalake"},
        owners=["team:data"],
        description=description,
        metadata={"dagster/column_schema": column_schema("/".join(key)), "partitioned_by": "shift_id"},
    )


def publish(lake: Path, table: str, frame: pl.DataFrame, shift_ids: Sequence[str]) -> dict[str, Any]:
    """Replace these shifts of `table` ("layer/name") with `frame`, which must have the table's contract
    schema; returns the metadata every table asset reports (rows, Delta version, path)."""
    if frame.schema != TABLES[table]:
        raise TypeError(
            f"{table}: rows do not have the contract schema of twin_pipeline/lib/contracts.py: "
            f"{dict(frame.schema)} != {dict(TABLES[table])}"
        )
    target = lake / table
    version = replace_shifts(target, frame, shift_ids)
    return {"dagster/row_count": frame.height, "delta_version": version, "path": dg.MetadataValue.path(str(target))}
