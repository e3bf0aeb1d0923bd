"""What every shift-partitioned asset shares: the calendar's partitions, the decorator arguments and
the metadata a published table reports.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import dagster as dg
import polars as pl

from twin_pipeline.lib.by_shift import split_by_shift
from twin_pipeline.lib.calendar.first_shift import first_shift_start
from twin_pipeline.lib.calendar.shift_calendar import SHIFT_ID_FORMAT, ShiftCalendar, load_calendar
from twin_pipeline.lib.column_descriptions import DESCRIPTIONS
from twin_pipeline.lib.column_lineage import LINEAGE
from twin_pipeline.lib.contracts import TABLES, Table
from twin_pipeline.lib.lake_io import replace_shifts
from twin_pipeline.lib.location import Location


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
    """The table's contract as Dagster column-schema metadata (shown on the asset page), each column
    with its description and unit (`lib/column_descriptions.py`; a column without one still loads, and
    tests/twin_pipeline/test_column_descriptions.py fails)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=DESCRIPTIONS.get(table, {}).get(name))
            for name, dtype in TABLES[table].items()
        ]
    )


def column_lineage(table: str) -> dg.TableColumnLineage:
    """The table's column lineage (`lib/column_lineage.py`): each column's upstream columns, bronze's naming
    the PackTags (as `value[<tag>]`) they come from."""
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(asset_key=dg.AssetKey(key.split("/")), column_name=name) for key, name in deps]
            for column, deps in LINEAGE.get(table, {}).items()  # a table without lineage: test_column_lineage.py fails
        }
    )


def table_metadata(table: str) -> dict[str, Any]:
    """The definition metadata of a lake table's asset: its column schema (with descriptions) and column
    lineage, both shown in the UI before anything is materialized."""
    return {"dagster/column_schema": column_schema(table), "dagster/column_lineage": column_lineage(table)}


#: The op tags of the steps OEE waits for (bronze, its blocking checks, the silver tables `fact_oee_shift` reads,
#: `fact_oee_shift`): a run executes ready steps by priority, so the seeded history's OEE shows in the UI
#: before the WARN checks and the other gold tables of the same run are done.
OEE_FIRST = {"dagster/priority": "10"}


def shift_asset(
    *, key: Sequence[str], group: str, deps: Sequence[Any], description: str, oee_first: bool = False
) -> Callable[..., Any]:
    """`@dg.asset` for a shift-partitioned polars/Delta asset; a range of shifts runs as one run. `oee_first`:
    a step OEE waits for (`OEE_FIRST`)."""
    return dg.asset(
        op_tags=OEE_FIRST if oee_first else None,
        key=list(key),
        deps=list(deps),
        partitions_def=SHIFTS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=group,
        kinds={"polars", "deltalake"},
        owners=["team:data"],
        description=description,
        metadata={**table_metadata("/".join(key)), "partitioned_by": "shift_id"},
    )


def publish(lake: Location, table: str, frame: pl.DataFrame, shift_ids: Sequence[str]) -> dict[str, Any]:
    """Replace these shifts of `table` ("layer/name") with `frame`, which must have the table's contract
    schema; returns the metadata every table asset reports (rows, Delta version, path)."""
    if frame.schema != TABLES[table]:
        raise TypeError(
            f"{table}: rows do not have the contract schema of twin_pipeline/lib/contracts.py: "
            f"{dict(frame.schema)} != {dict(TABLES[table])}"
        )
    target = lake / table
    version = replace_shifts(target, frame, shift_ids)
    return {
        "dagster/row_count": frame.height,
        "delta_version": version,
        "path": dg.MetadataValue.path(str(target)),
        "dagster/column_lineage": column_lineage(table),  # on the materialization too: where Dagster+ draws it
    }


def report_per_shift(
    context: dg.AssetExecutionContext,
    frame: pl.DataFrame,
    metadata: Callable[[pl.DataFrame], Mapping[str, Any]] = lambda rows: {},
) -> None:
    """Give each shift of the run its own metadata: `dagster/row_count` and `metadata(its rows)` on the
    materialization of its own partition. A single-run backfill of a range materializes every shift from
    one step; without this, every shift would report the range's figures (issue 14, defect 4), and the
    asset's plots would be flat. Per-partition metadata overrides the run-level metadata of the same key."""
    for shift_id, rows in split_by_shift(frame, context.partition_keys).items():
        context.add_asset_metadata({"dagster/row_count": rows.height, **metadata(rows)}, partition_key=shift_id)
