"""The pages' reads, cached per table version: a page re-run (every widget change, every live tick)
lists a table's log, and reads it again only when a materialization changed it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import polars as pl
import streamlit as st

from dashboard import lake as lake_io
from twin_pipeline.lib.calendar.shift_calendar import ShiftCalendar, load_calendar
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.edge_source import LocalEdges
from twin_pipeline.lib.location import Location
from twin_pipeline.lib.settings import DEFAULT_EDGE_ID, edges


@st.cache_resource(show_spinner=False)
def _calendar(shifts_file: str) -> ShiftCalendar:
    return load_calendar(Path(shifts_file) if shifts_file else None)


def calendar() -> ShiftCalendar:
    """The shift calendar, parsed once (per `TWIN_SHIFTS`), not on every page run."""
    return _calendar(os.environ.get("TWIN_SHIFTS", ""))


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


def edge_lakes() -> dict[str, Path]:
    """The edges whose own tables this machine can read, by edge id: `TWIN_EDGES` when set, else the lake
    itself when it is a local folder (the local twin's collector writes its tables under `<lake>/edge`)."""
    if os.environ.get("TWIN_EDGES", "").strip():
        return edges()
    where = root()
    return {DEFAULT_EDGE_ID: where.local} if where.is_local else {}


@st.cache_data(show_spinner=False, ttl=30)
def edge_rows(table: str, time_column: str, start: datetime, end: datetime) -> pl.DataFrame:
    """An edge table's rows in [start, end) from every readable edge (empty when there is none)."""
    lakes = edge_lakes()
    if not lakes:
        return pl.DataFrame()
    return LocalEdges(lakes).read(table, time_column, start, end)
