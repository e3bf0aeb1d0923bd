"""Where a shift's carried-in values come from, written once: bronze reads it, and so does the live page,
whose figures must be what the shift's bronze will give."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.edge_source import EdgeSource
from twin_pipeline.lib.lake_io import read_bronze
from twin_pipeline.lib.location import Location
from twin_pipeline.lib.transforms.bronze import CARRY_LOOKBACK, typed


def rows_before(
    lake: Location | Path | None,
    edges: EdgeSource,
    window: ShiftWindow,
    previous_id: str,
    tags: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The rows a shift starts from, as bronze carries them in (and the live page, which must agree): the
    previous shift's bronze when the pipeline built it, else the edges' rows of `CARRY_LOOKBACK` before the
    shift, typed as that shift's; only `tags` when given."""
    found = read_bronze(lake, previous_id, tags) if lake is not None else pl.DataFrame()
    if found.height:
        return found
    scan = edges.scan("raw_samples", "source_ts", window.start - CARRY_LOOKBACK, window.start)
    if tags is not None:
        scan = scan.filter(pl.col("tag").is_in(list(tags)))
    return typed(scan.collect(), previous_id)
