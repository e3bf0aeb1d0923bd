"""Reading the lake for the pages, without Streamlit: whole gold tables (small: a row per line and
shift), silver of chosen shifts only (a row per part), always with the contract's schema, so an empty
or missing table is an empty frame a page can still draw."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from twin_pipeline.lib.contracts import TABLES, Table, table_path
from twin_pipeline.lib.lake_io import open_table, read_shifts, table_version
from twin_pipeline.lib.location import Location, polars_options
from twin_pipeline.lib.settings import lake_root


def lake() -> Location:
    """The lake `TWIN_LAKE` names (default `$TWIN_HOME/lake`), as the pipeline writes it."""
    return Location.of(lake_root())


def version(root: Location, table: Table) -> int | None:
    """The table's Delta version (None: not written yet): the cache key, so a new materialization shows."""
    return table_version(table_path(root, table))


def read_all(root: Location, table: Table) -> pl.DataFrame:
    """Every row of a table, in its contract's schema (empty when the table does not exist yet)."""
    schema = TABLES[table]
    path = table_path(root, table)
    if table_version(path) is None:
        return pl.DataFrame(schema=schema)
    frame = pl.scan_delta(open_table(path), **polars_options(path)).collect()
    return frame.select([pl.col(c).cast(t) for c, t in schema.items() if c in frame.columns])


def read_some(
    root: Location, table: Table, shift_ids: Sequence[str], columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """The rows of these shifts only (the Delta log picks their files), in the contract's schema."""
    schema = TABLES[table]
    wanted = list(columns) if columns is not None else list(schema.names())
    frame = read_shifts(table_path(root, table), list(shift_ids), wanted) if shift_ids else pl.DataFrame()
    if not frame.height:
        return pl.DataFrame(schema={c: schema[c] for c in wanted})
    return frame.select([pl.col(c).cast(schema[c]) for c in wanted])
