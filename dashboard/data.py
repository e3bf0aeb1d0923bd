"""The pages' reads, cached per table version: a page re-run (every widget change, every live tick)
lists a table's log, and reads it again only when a materialization changed it."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import streamlit as st

from dashboard import lake as lake_io
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.location import Location


def root() -> Location:
    return lake_io.lake()


@st.cache_data(show_spinner=False, max_entries=64)
def _all(root_uri: str, table: str, version: int | None) -> pl.DataFrame:
    return lake_io.read_all(Location.of(root_uri), Table(table))


@st.cache_data(show_spinner=False, max_entries=64)
def _some(
    root_uri: str, table: str, version: int | None, shift_ids: tuple[str, ...], columns: tuple[str, ...] | None
) -> pl.DataFrame:
    return lake_io.read_some(Location.of(root_uri), Table(table), shift_ids, columns)


def table(table: Table) -> pl.DataFrame:
    """A whole table (gold: small), as of its current version."""
    where = root()
    return _all(where.uri, table.value, lake_io.version(where, table))


def shifts_of(table: Table, shift_ids: Sequence[str], columns: Sequence[str] | None = None) -> pl.DataFrame:
    """These shifts of a table (silver: large), as of its current version."""
    where = root()
    return _some(
        where.uri,
        table.value,
        lake_io.version(where, table),
        tuple(sorted(shift_ids)),
        tuple(columns) if columns is not None else None,
    )
