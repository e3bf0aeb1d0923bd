"""OEE trend: per shift and line, with A, P and Q, the plant as a ratio of sums (`oee.roll_up`),
provisional shifts marked. Every figure is a gold column or `roll_up` of gold rows."""

from __future__ import annotations

from dataclasses import asdict

import polars as pl
import streamlit as st

from dashboard import charts, data
from dashboard.selection import nothing_yet, sidebar
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.transforms.oee import percent, roll_up

MEASURES = ("oee", "availability", "performance", "quality")
LABELS = {"oee": "OEE", "availability": "Availability", "performance": "Performance", "quality": "Quality"}
TABLE_COLUMNS = (
    "shift_id",
    "line_id",
    "availability",
    "performance",
    "quality",
    "oee",
    "produced",
    "good",
    "reject",
    "provisional",
    "provisional_reason",
)

selection = sidebar()
rows = selection.rows(data.table(Table.OEE_SHIFT)).sort("shift_start", "line_id")
st.title(f"OEE, shift {selection.shift}" if selection.shift else "OEE trend")
if not rows.height:
    nothing_yet("OEE", Table.OEE_SHIFT)

plant = roll_up(rows)
st.caption(
    f"Plant over {rows['shift_id'].n_unique()} shift(s) and {rows['line_id'].n_unique()} line(s): times and counts "
    "summed, ratios recomputed (ISO 22400-2), never averaged. Dashed: the plant per shift; hollow diamonds: "
    "provisional."
)
for column, name in zip(st.columns(4), MEASURES, strict=True):
    column.metric(LABELS[name], percent(getattr(plant, name)))

provisional = rows.filter(pl.col("provisional"))
if provisional.height:
    st.warning(
        f"{provisional.height} of {rows.height} line-shift(s) are provisional (drawn hollow): "
        + "; ".join(sorted(set(provisional["provisional_reason"].drop_nulls().to_list())))
    )
present = rows.group_by("shift_id").agg(pl.col("line_id"))
missing = [
    f"{line} in {shift_id}" for shift_id, lines in present.iter_rows() for line in selection.lines if line not in lines
]
if missing:
    st.warning(f"No gold row for {len(missing)} line-shift(s): " + ", ".join(sorted(missing)[:12]))

per_shift = [
    {"shift_id": shift_id, "shift_start": group["shift_start"][0], **asdict(roll_up(group))}
    for (shift_id,), group in rows.group_by(["shift_id"], maintain_order=True)
]
plant_rows = pl.DataFrame(per_shift).sort("shift_start")
# one chart and a choice of measure (four tabs would draw four charts before the page is usable)
shown = (
    st.segmented_control("Measure", MEASURES, default="oee", format_func=lambda m: LABELS[m], key="measure") or "oee"
)
st.altair_chart(charts.oee_trend(rows, plant_rows, shown), width="stretch")

if selection.shift:  # one shift: its lines side by side
    for column, ((line_id,), group) in zip(
        st.columns(max(1, rows["line_id"].n_unique())), rows.group_by(["line_id"], maintain_order=True)
    ):
        column.metric(f"OEE {line_id}", percent(roll_up(group).oee))

percent_column = st.column_config.NumberColumn(format="percent")
st.expander(f"Gold rows ({rows.height})").dataframe(
    rows.select(TABLE_COLUMNS),
    hide_index=True,
    width="stretch",
    column_config={m: percent_column for m in MEASURES},
)
