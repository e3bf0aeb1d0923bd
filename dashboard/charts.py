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
    final = base.transform_filter("!datum.provisional").mark_circle(size=60, opacity=1).encode(tooltip=tooltip)
    provisional = (
        base.transform_filter("datum.provisional")
        .mark_point(size=80, shape="diamond", filled=False, strokeWidth=2)
        .encode(tooltip=tooltip)
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
    layers = [lines, final, *([provisional] if per_line["provisional"].any() else []), total]
    return alt.layer(*layers).properties(height=320)  # an empty layer would warn in the browser's console
