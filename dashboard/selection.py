"""What the pages show: the lines and the shifts (a period of plant-local days, or one shift a link
named with `?shift=<shift_id>`), chosen once in the sidebar and kept while moving between pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import NoReturn

import polars as pl
import streamlit as st

from dashboard import data
from twin_pipeline.lib.contracts import Table

#: Days shown when nothing is chosen: the last week of the lake's shifts.
DEFAULT_DAYS = 7


@dataclass(frozen=True)
class Selection:
    lines: tuple[str, ...]
    shift_ids: tuple[str, ...]  # in time order
    shift: str | None  # one shift, from a link

    def rows(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of `frame` (with shift_id and line_id) in the selection."""
        return frame.filter(pl.col("shift_id").is_in(self.shift_ids) & pl.col("line_id").is_in(self.lines))


def shifts_index() -> pl.DataFrame:
    """Every shift gold has: shift_id, shift_name, shift_start (UTC) and its plant-local date."""
    tz = data.calendar().tz.key
    rows = data.table(Table.OEE_SHIFT).select("shift_id", "shift_name", "shift_start", "line_id")
    return (
        rows.group_by("shift_id", "shift_name", "shift_start")
        .agg(pl.col("line_id").unique().sort())
        .with_columns(local_date=pl.col("shift_start").dt.convert_time_zone(tz).dt.date())
        .sort("shift_start")
    )


def sidebar() -> Selection:
    """The sidebar's choices (and a `?shift=` link's), over what gold holds."""
    index = shifts_index()
    lines = sorted({line for lines in index["line_id"].to_list() for line in lines})
    linked = st.query_params.get("shift")
    chosen_lines = tuple(
        st.sidebar.multiselect("Lines", lines, default=lines, key="lines", help="Lines of gold/fact_oee_shift")
    )
    if linked and linked in index["shift_id"].to_list():
        st.sidebar.info(f"Shift **{linked}** (from a link). Clear the link to choose a period.")
        return Selection(chosen_lines, (linked,), linked)
    if not index.height:
        return Selection(chosen_lines, (), None)
    first, last = index["local_date"].min(), index["local_date"].max()
    assert isinstance(first, date) and isinstance(last, date)  # noqa: S101 - a non-empty date column
    default = (max(first, last - timedelta(days=DEFAULT_DAYS - 1)), last)
    period = st.sidebar.date_input(
        "Plant days", value=default, min_value=first, max_value=last, key="period", help="Shifts starting on these days"
    )
    start, end = (period[0], period[-1]) if isinstance(period, tuple) and period else (default[0], default[1])
    in_period = index.filter(pl.col("local_date").is_between(start, end))
    return Selection(chosen_lines, tuple(in_period["shift_id"].to_list()), None)


def nothing_yet(what: str, *tables: Table) -> NoReturn:
    """Say that gold has no `what` for the selection, which assets to materialize, and stop the page."""
    assets = " and ".join(f"`{t.value}`" for t in tables)
    st.info(
        f"Gold has no {what} for this selection yet. Materialize {assets} in the Dagster UI (`make run` does it for "
        "the seeded history), or choose other lines or days in the sidebar."
    )
    st.stop()
