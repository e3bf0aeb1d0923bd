"""Stops: a downtime Pareto by reason from `gold/fact_downtime` (micro-stops apart, under a minute:
`downtime.MICROSTOP_S`), and MTBF and MTTR from `gold/fact_reliability` as ratios of sums."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, data
from dashboard.selection import nothing_yet, sidebar
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.transforms.downtime import MICROSTOP_S
from twin_pipeline.lib.transforms.reliability import roll_up


def pareto_rows(stops: pl.DataFrame) -> pl.DataFrame:
    """Downtime per reason, largest first, with each reason's cumulative share of the total."""
    rows = (
        stops.with_columns(pl.col("reason").fill_null("(no reason)"))
        .group_by("reason", "category")
        .agg(minutes=pl.col("duration_s").sum() / 60, stops=pl.len())
        .sort("minutes", "reason", descending=[True, False])
    )
    return rows.with_columns(cumulative_share=pl.col("minutes").cum_sum() / pl.col("minutes").sum())


def _hours(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / 3600:,.2f} h" if seconds >= 3600 else f"{seconds / 60:,.1f} min"


selection = sidebar()
downtime = selection.rows(data.table(Table.DOWNTIME))
reliability = selection.rows(data.table(Table.RELIABILITY))
st.title("Stops")
if not downtime.height and not reliability.height:
    nothing_yet("stops", Table.DOWNTIME, Table.RELIABILITY)
mtbf, mttr = roll_up(reliability)
stops, micro = downtime.filter(~pl.col("is_microstop")), downtime.filter(pl.col("is_microstop"))
columns = st.columns(4)
columns[0].metric("Stops", f"{stops.height:,}", help=f"Interruptions of Execute of {MICROSTOP_S:.0f} s or more")
columns[1].metric("Micro-stops", f"{micro.height:,}", help=f"Interruptions shorter than {MICROSTOP_S:.0f} s")
columns[2].metric("MTBF", _hours(mtbf), help="Production time over failures (faults), summed over the selection")
columns[3].metric("MTTR", _hours(mttr), help="Repair time over failures, summed over the selection")
for column, (title, rows, none) in zip(
    st.columns(2),
    (
        ("Downtime by reason", stops, "No stop of a minute or more in this selection."),
        ("Micro-stops by reason", micro, "No micro-stop in this selection."),
    ),
):
    column.subheader(title)
    if rows.height:
        column.altair_chart(charts.pareto(pareto_rows(rows), "reason", "minutes", "minutes"), width="stretch")
    else:
        column.info(none)
st.subheader("MTBF and MTTR per line")
per_line = [
    {
        "line_id": line_id,
        "failures": int(rows["failures"].sum()),
        "mtbf_h": m / 3600 if m else None,
        "mttr_min": r / 60 if r else None,
    }
    for (line_id,), rows in reliability.sort("line_id").group_by(["line_id"], maintain_order=True)
    for m, r in [roll_up(rows)]
]
st.dataframe(pl.DataFrame(per_line), hide_index=True, width="stretch")
st.subheader("Longest stops")
st.dataframe(
    downtime.sort("duration_s", descending=True)
    .head(20)
    .select("shift_id", "line_id", "stop_start", "duration_s", "reason", "category", "is_microstop", "in_gap"),
    hide_index=True,
    width="stretch",
)
