"""Chart builders (Altair, rendered by Streamlit with Vega-Lite): one look for every page."""

from __future__ import annotations

import altair as alt
import polars as pl

#: Axis format of a ratio shown in percent.
PERCENT = ".0%"
PLANT = "plant"


def oee_trend(per_line: pl.DataFrame, plant: pl.DataFrame, measure: str = "oee") -> alt.LayerChart | alt.FacetChart:
    """`measure` per shift: one line per production line (provisional shifts drawn hollow) and the plant's
    ratio of sums dashed on top."""
    tooltip = [
        alt.Tooltip("shift_id:N", title="shift"),
        alt.Tooltip("line_id:N", title="line"),
        alt.Tooltip(f"{measure}:Q", format=".1%"),
        alt.Tooltip("provisional_reason:N", title="provisional"),
    ]
    base = alt.Chart(per_line).encode(
        x=alt.X("shift_start:T", title="shift start"),
        y=alt.Y(f"{measure}:Q", title=measure.upper() if measure == "oee" else measure, axis=alt.Axis(format=PERCENT)),
        color=alt.Color("line_id:N", title="line"),
    )
    lines = base.mark_line(opacity=0.6)
    points = base.mark_point(size=60, filled=True).encode(
        fill=alt.condition("datum.provisional", alt.value("white"), alt.Color("line_id:N")),
        shape=alt.condition("datum.provisional", alt.value("diamond"), alt.value("circle")),
        tooltip=tooltip,
    )
    total = (
        alt.Chart(plant)
        .mark_line(color="black", strokeDash=[6, 3], point=True)
        .encode(
            x="shift_start:T",
            y=f"{measure}:Q",
            tooltip=[alt.Tooltip("shift_id:N", title="shift"), alt.Tooltip(f"{measure}:Q", format=".1%", title=PLANT)],
        )
    )
    return alt.layer(lines, points, total).properties(height=320)
