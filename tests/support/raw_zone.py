"""Landing edge lakes into a raw zone for tests, by the raw zone's contract (`lib/raw_zone.py`): into a
Blob container (through `integrations.landing.land`, as the landing assets do) or a local folder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from edge_collector.schemas import TABLES
from twin_pipeline.lib.calendar.shift_calendar import load_calendar
from twin_pipeline.lib.integrations.landing import land, parquet_bytes
from twin_pipeline.lib.raw_zone import ORDER, belongs, object_name

CALENDAR = load_calendar()


def slices(edges: Mapping[str, Path], shift_ids: Sequence[str]) -> dict[str, pl.DataFrame]:
    """{object name: rows} of every edge table, shift and edge."""
    out = {}
    for edge_id, lake in edges.items():
        for table in TABLES:
            path = lake / "edge" / table
            whole = (
                pl.read_delta(str(path))
                if (path / "_delta_log").exists()
                else pl.DataFrame(TABLES[table].empty_table())
            )
            for shift_id in shift_ids:
                rows = whole.filter(belongs(table, CALENDAR.window(shift_id))).sort(ORDER[table])
                out[object_name(table, shift_id, edge_id)] = rows
    return out


def land_in_container(container: Any, edges: Mapping[str, Path], shift_ids: Sequence[str]) -> int:
    """Land every slice in a Blob container; returns how many objects."""
    parts = slices(edges, shift_ids)
    for name, rows in parts.items():
        land(container, name, parquet_bytes(rows))
    return len(parts)


def land_in_folder(root: Path, edges: Mapping[str, Path], shift_ids: Sequence[str]) -> int:
    """Lay the slices out in a local folder (a raw zone on disk); returns how many objects."""
    parts = slices(edges, shift_ids)
    for name, rows in parts.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(parquet_bytes(rows))
    return len(parts)
