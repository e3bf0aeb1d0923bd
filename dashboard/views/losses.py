"""Losses: a waterfall from planned busy time to fully productive time across the six big losses, each
bar the sum of `gold/fact_losses` seconds (the losses add up to `fact_oee_shift`: its check
`losses_add_up`)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, data
from dashboard.selection import nothing_yet, sidebar
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.transforms.losses import LOSSES
from twin_pipeline.lib.transforms.oee import percent, roll_up

#: The steps of the waterfall: the losses of each OEE factor, then the time left after them.
STEPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("availability", ("breakdowns", "setup_adjustment", "unknown"), "actual production time"),
    ("performance", ("small_stops", "reduced_speed"), "net production time"),
    ("quality", ("startup_rejects", "production_rejects"), "fully productive time"),
)
LABELS = {
    "breakdowns": "breakdowns",
    "setup_adjustment": "setup & adjustment",
    "unknown": "unknown (gaps)",
    "small_stops": "small stops",
    "reduced_speed": "reduced speed",
    "startup_rejects": "start-up rejects",
    "production_rejects": "production rejects",
}
assert set(LABELS) == set(LOSSES)  # noqa: S101 - every loss of the one definition has a bar


def steps(oee: pl.DataFrame, losses: pl.DataFrame) -> pl.DataFrame:
    """The waterfall's bars in hours: planned busy time, minus each loss, with a subtotal per factor."""
    by_loss = dict(losses.group_by("loss").agg(pl.col("seconds").sum()).iter_rows())
    level = float(oee["planned_busy_time_s"].sum()) / 3600
    out = [{"label": "planned busy time", "factor": "time", "hours": level, "start": 0.0, "end": level}]
    for factor, names, subtotal in STEPS:
        for name in names:
            if name == "unknown" and not by_loss.get(name):
                continue
            hours = float(by_loss.get(name, 0.0)) / 3600
            out.append({"label": LABELS[name], "factor": factor, "hours": -hours, "start": level, "end": level - hours})
            level -= hours
        out.append({"label": subtotal, "factor": "time", "hours": level, "start": 0.0, "end": level})
    return pl.DataFrame(out).with_columns(top=pl.max_horizontal("start", "end"))


selection = sidebar()
oee = selection.rows(data.table(Table.OEE_SHIFT))
losses = selection.rows(data.table(Table.LOSSES))
st.title("Losses")
if not oee.height or not losses.height:
    nothing_yet("losses", Table.LOSSES, Table.OEE_SHIFT)
bars = steps(oee, losses)
plant = roll_up(oee)
columns = st.columns(3)
columns[0].metric("Planned busy time", f"{bars['hours'][0]:,.1f} h")
columns[1].metric("Fully productive time", f"{bars['hours'][-1]:,.1f} h")
columns[2].metric("OEE", percent(plant.oee), help="Fully productive time over planned busy time")
st.caption(
    "The six big losses (ISO 22400-2 time elements) of the selected line-shifts, from `gold/fact_losses`: "
    "availability (breakdowns, setup), performance (small stops, reduced speed), quality (rejects as ideal "
    "cycle time x parts). Reduced speed is negative where performance exceeds 100 % (flagged in gold)."
)
st.altair_chart(charts.waterfall(bars), width="stretch")
by_cause = (
    losses.group_by("loss", "oee_factor", "cause")
    .agg(hours=pl.col("seconds").sum() / 3600, count=pl.col("count").sum(), parts=pl.col("parts").sum())
    .sort("hours", descending=True)
)
st.dataframe(
    by_cause, hide_index=True, width="stretch", column_config={"hours": st.column_config.NumberColumn(format="%.2f")}
)
