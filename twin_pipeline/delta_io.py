"""Reading and replacing shift slices of Delta tables: the one place that knows how.

Re-running a shift replaces exactly that shift: a predicate overwrite on the `shift_id`
partition column, in one Delta commit (no Delta IO manager: they are broken for sub-daily
partitions, see shared/notes/dagster.md §7).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from edge_collector.schemas import TABLES, day_of


def days_between(start: datetime, end: datetime) -> list[str]:
    """UTC `day` partition values overlapping [start, end)."""
    days, day = [], start
    while day < end + timedelta(days=1):
        days.append(day_of(day))
        day += timedelta(days=1)
    return sorted({d for d in days if d <= day_of(end - timedelta(microseconds=1))})


def scan_edge(path: Path, table: str, time_column: str, start: datetime, end: datetime) -> pl.LazyFrame:
    """Rows of an edge table with `time_column` in [start, end), pruned to the day partitions."""
    if not (path / "_delta_log").exists():
        return pl.LazyFrame(schema=pl.Schema(pl.from_arrow(TABLES[table].empty_table()).schema))
    return (
        pl.scan_delta(str(path))
        .filter(pl.col("day").is_in(days_between(start, end)))
        .filter((pl.col(time_column) >= start) & (pl.col(time_column) < end))
    )


def replace_shifts(path: Path, frame: pl.DataFrame, shift_ids: Sequence[str]) -> int:
    """Replace the given shifts' rows with `frame` in one commit; returns the new Delta version."""
    if not shift_ids:
        raise ValueError("no shift ids to replace")
    unknown = set(frame["shift_id"].unique().to_list()) - set(shift_ids)
    if unknown:
        raise ValueError(f"rows for shifts {sorted(unknown)} outside the replaced set {list(shift_ids)}")
    predicate = " OR ".join(f"shift_id = '{s}'" for s in shift_ids)
    exists = (path / "_delta_log").exists()
    frame.write_delta(
        str(path), mode="overwrite" if exists else "append",
        delta_write_options={"partition_by": ["shift_id"], **({"predicate": predicate} if exists else {})},
    )
    return DeltaTable(str(path)).version()


def table_version(path: Path) -> int | None:
    try:
        return DeltaTable(str(path)).version()
    except TableNotFoundError:
        return None


def mark_provisional(path: Path, shift_ids: Sequence[str], reason: str) -> int:
    """Flag the gold rows of these shifts provisional with `reason` (added to any reason they have);
    returns how many rows were flagged. Used when a blocking check stops a shift's gold: the figures
    already published for it stay visible, but not as final."""
    if not (path / "_delta_log").exists():
        return 0
    table = DeltaTable(str(path))
    ids = ", ".join(f"'{s}'" for s in shift_ids)
    text = reason.replace("'", "''")
    metrics = table.update(
        predicate=f"shift_id IN ({ids})",
        updates={"provisional": "true",
                 "provisional_reason": f"CASE WHEN provisional_reason IS NULL OR provisional_reason = '' THEN '{text}' "
                                       f"WHEN strpos(provisional_reason, '{text}') > 0 THEN provisional_reason "
                                       f"ELSE concat(provisional_reason, '; ', '{text}') END"},
    )
    return int(metrics.get("num_updated_rows", 0))
