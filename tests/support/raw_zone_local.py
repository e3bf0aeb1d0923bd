"""A raw zone in a local folder, laid out from an edge lake as landing lays it out in Blob Storage
(`twin_pipeline/lib/raw_zone.py`: which rows belong to a shift, the object names, the row order), for the
tests that read the raw zone without the landing path (that one has its own tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from edge_collector.schemas import edge_table_path
from twin_pipeline.lib import raw_zone
from twin_pipeline.lib.calendar.shift_calendar import load_calendar


def lay_out_raw_zone(
    edge_lake: Path,
    root: Path,
    edge_id: str,
    shift_ids: Sequence[str],
    tables: Sequence[str] = ("raw_samples", "quarantine", "gaps", "subscriptions"),
    lines: Sequence[str] | None = None,
) -> list[Path]:
    """Write `root/raw/<table>/shift_id=<id>/edge_id=<edge_id>/part-0.parquet` for each shift with rows (only
    `lines` when given); returns the objects written."""
    calendar = load_calendar()
    written = []
    for table in tables:
        path = edge_table_path(edge_lake, table)
        if not (path / "_delta_log").exists():
            continue
        frame = pl.read_delta(str(path))
        if lines is not None:
            frame = frame.filter(pl.col("line_id").is_in(list(lines)))
        for shift_id in shift_ids:
            rows = frame.filter(raw_zone.belongs(table, calendar.window(shift_id))).sort(raw_zone.ORDER[table])
            if not rows.height:
                continue
            target = root / raw_zone.object_name(table, shift_id, edge_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            rows.write_parquet(target)
            written.append(target)
    return written
