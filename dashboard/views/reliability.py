"""Reliability: the observed times to failure of a line (from `silver/state_intervals` over the fit
window gold used) on a Weibull plot, against the fitted and the injected distributions of
`gold/fact_reliability` (the twin's ground truth)."""

from __future__ import annotations

import math

import polars as pl
import streamlit as st

from dashboard import charts, data
from dashboard.selection import nothing_yet, sidebar
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.transforms.reliability import failures, median_ranks, weibull_line


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


selection = sidebar()
reliability = selection.rows(data.table(Table.RELIABILITY)).sort("shift_id", "line_id")
st.title("Reliability")
if not reliability.height:
    nothing_yet("reliability figures", Table.RELIABILITY)
line_id = st.selectbox("Line", reliability["line_id"].unique().sort().to_list(), key="weibull_line")
row = reliability.filter(pl.col("line_id") == line_id).row(-1, named=True)  # the newest shift's fit
window_end = data.calendar().window(row["shift_id"]).end
fit_shifts = [w.shift_id for w in data.calendar().windows(row["fit_window_start"], window_end)]
intervals = data.shifts_of(Table.STATE_INTERVALS, fit_shifts).filter(pl.col("line_id") == line_id)
seen = failures(intervals)
points = median_ranks(seen.times_to_failure_s).with_columns(ttf_h=pl.col("ttf_s") / 3600)

columns = st.columns(4)
columns[0].metric("Failures observed", f"{len(seen.times_to_failure_s):,}", help="Times to failure in the fit window")
columns[1].metric(
    "Fitted shape / scale",
    f"{_num(row['weibull_shape'], '.2f')} / {_num(row['weibull_scale'] and row['weibull_scale'] / 3600, '.2f')} h",
    help="Maximum-likelihood Weibull with right-censoring (gold)",
)
columns[2].metric(
    "Injected shape / scale",
    f"{_num(row['injected_weibull_shape'], '.2f')} / "
    f"{_num(row['injected_weibull_scale'] and row['injected_weibull_scale'] / 3600, '.2f')} h",
    help=f"What the variability engine drew from: {row['injected_ttf_distribution'] or 'nothing injected'}",
)
columns[3].metric("Censored", f"{row['fit_censored']:,}", help="Uptimes still running when the window ended")
st.caption(
    f"{line_id}: the fit of shift {row['shift_id']} over its window from {row['fit_window_start']:%Y-%m-%d %H:%M} UTC "
    f"({len(fit_shifts)} shifts). Points: observed times to failure at their median ranks (censored uptimes are "
    "not drawn); lines: the fitted and the injected Weibull."
)
if points.height:
    observed = points["ttf_s"].to_list()
    span = [min(observed) / 2, max(observed) * 2]
    grid = [span[0] * (span[1] / span[0]) ** (i / 40) for i in range(41)]
    models = [
        (name, shape, scale)
        for name, shape, scale in (
            ("fitted", row["weibull_shape"], row["weibull_scale"]),
            ("injected", row["injected_weibull_shape"], row["injected_weibull_scale"]),
        )
        if shape is not None and scale is not None and not math.isnan(shape)
    ]
    lines = pl.DataFrame(
        [
            {
                "distribution": f"{name} (shape {shape:.2f}, scale {scale / 3600:.2f} h)",
                "ttf_h": t / 3600,
                "weibull_y": y,
            }
            for name, shape, scale in models
            for t, y in zip(grid, weibull_line(shape, scale, grid))
        ],
        schema={"distribution": pl.String, "ttf_h": pl.Float64, "weibull_y": pl.Float64},
    )
    st.altair_chart(charts.weibull_plot(points, lines), width="stretch")
else:
    st.info(f"No observed time to failure of {line_id} in the fit window.")
st.subheader("Per shift")
st.altair_chart(
    charts.per_shift(reliability.with_columns(mtbf_h=pl.col("mtbf_s") / 3600), ["mtbf_h"], "MTBF (h)"), width="stretch"
)
st.dataframe(reliability, hide_index=True, width="stretch")
