"""Landing one edge table's slice of a shift in the raw zone, and the receipt the edge box keeps of it.

The slice is what `raw_zone.belongs` gives for the shift, with the edge table's own columns, sorted by
`raw_zone.ORDER` (the same rows give the same bytes, so a re-run is a no-op), uploaded with
`landing.land` (block MD5, SHA-256 in the metadata, verified, capped retries) as
`raw_zone.object_name(table, shift, edge)`. An empty slice is landed too (an empty Parquet with the
schema): "landed" is then provable for every (table, shift, edge), and the edge's retention may rely on it.

A shift that touches a UTC day the edge has already pruned (`edge_collector.receipts.touches_pruned`)
is never landed again from that edge: its slice would be partial and would replace a whole, verified
object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from deltalake import DeltaTable

from edge_collector.receipts import Receipt, days_touched, touches_pruned
from edge_collector.schemas import TABLES as EDGE_TABLES
from edge_collector.schemas import edge_table_path
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.integrations.landing import Landed, land, parquet_bytes
from twin_pipeline.lib.raw_zone import ORDER, belongs, object_name

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

#: Tables partitioned by the UTC day of the time `belongs` filters on: a shift reads only its days.
_BY_EVENT_DAY = ("raw_samples", "injected_events", "quarantine")


@dataclass(frozen=True)
class SliceLanded:
    """One (table, shift, edge): the object landed, or why it was not (`skipped`)."""

    table: str
    shift_id: str
    edge_id: str
    rows: int
    landed: Landed | None
    receipt: Receipt | None
    skipped: str = ""


def read_slice(edge_lake: Path, table: str, window: ShiftWindow) -> pl.DataFrame:
    """The rows of one edge's `table` that belong to the shift, with the edge's columns, in `ORDER`."""
    schema = EDGE_TABLES[table]
    empty = pl.DataFrame(schema.empty_table())
    path = edge_table_path(edge_lake, table)
    if not DeltaTable.is_deltatable(str(path)):
        return empty
    scan = pl.scan_delta(str(path))
    if table in _BY_EVENT_DAY:
        scan = scan.filter(pl.col("day").is_in(days_touched(window.start, window.end)))
    frame = scan.filter(belongs(table, window)).select(schema.names).collect()
    return frame.cast(empty.schema).sort(ORDER[table])


def land_slice(
    container: ContainerClient, edge_lake: Path, edge_id: str, table: str, window: ShiftWindow
) -> SliceLanded:
    """Land one edge's slice of `table` for the shift; returns what happened and the receipt to record."""
    gone = touches_pruned(edge_lake, window.start, window.end)
    if gone:
        return SliceLanded(
            table,
            window.shift_id,
            edge_id,
            0,
            None,
            None,
            skipped=f"the edge pruned {', '.join(gone)} after landing it: the landed object stays",
        )
    frame = read_slice(edge_lake, table, window)
    name = object_name(table, window.shift_id, edge_id)
    result = land(container, name, parquet_bytes(frame))
    per_day = frame.group_by("day").len()
    receipt = Receipt(
        table=table,
        edge_id=edge_id,
        shift_id=window.shift_id,
        start=window.start,
        end=window.end,
        object=name,
        sha256=result.sha256,
        rows=frame.height,
        bytes=result.size,
        day_rows=dict(zip(per_day["day"].to_list(), per_day["len"].to_list(), strict=True)),
        landed_at=datetime.now(UTC),
    )
    return SliceLanded(table, window.shift_id, edge_id, frame.height, result, receipt)
