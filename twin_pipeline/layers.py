"""Where each layer's Delta tables live and how a shift's neighbourhood is read back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import polars as pl

from edge_collector.schemas import edge_table_path
from twin_pipeline.delta_io import scan_shifts
from twin_pipeline.shift_calendar import ShiftCalendar, ShiftWindow


def layer_path(lake: Path, layer: str, table: str) -> Path:
    return lake / layer / table


def previous_shift(calendar: ShiftCalendar, window: ShiftWindow) -> ShiftWindow:
    return calendar.shift_at(window.start - timedelta(microseconds=1))


def read_shifts(path: Path, shift_ids: list[str], columns: Sequence[str] | None = None,
                where: pl.Expr | None = None) -> pl.DataFrame:
    """Rows of a shift-partitioned table for these shifts (empty frame when the table is missing); only
    `columns` and the rows matching `where` when given, both pushed into the Parquet read."""
    if not (path / "_delta_log").exists():
        return pl.DataFrame()
    scan = scan_shifts(path, shift_ids)
    if where is not None:
        scan = scan.filter(where)
    return (scan.select(columns) if columns is not None else scan).collect()


def plc_gaps(lake: Path, window: ShiftWindow) -> list[tuple[str, object, object]]:
    """Collector outages overlapping the window, in PLC time: (line, start, end)."""
    path = edge_table_path(lake, "gaps")
    if not (path / "_delta_log").exists():
        return []
    gaps = pl.read_delta(str(path)).filter(pl.col("source_ts_before").is_not_null())
    out = []
    for row in gaps.iter_rows(named=True):
        start, end = row["source_ts_before"], row["source_ts_after"] or window.end
        if start < window.end and end > window.start:
            out.append((row["line_id"], max(start, window.start), min(end, window.end)))
    return out
