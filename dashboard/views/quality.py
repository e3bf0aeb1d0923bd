"""Quality: an individuals (SPC) chart of one line-shift's part deviations from `silver/part_measurements`
with its control limits (mean +- 3 sigma of `gold/fact_quality`) and tolerance, and Cp and Cpk per shift."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, data
from dashboard.selection import nothing_yet, sidebar
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.transforms.spc import control_limits

#: Points an SPC chart draws at most (every k-th part beyond): a shift has tens of thousands of parts,
#: and the limits come from all of them (gold).
MAX_POINTS = 4000

selection = sidebar()
quality = selection.rows(data.table(Table.QUALITY)).sort("shift_id", "line_id")
st.title("Quality")
if not quality.height:
    nothing_yet("quality figures", Table.QUALITY, Table.PART_MEASUREMENTS)
left, right = st.columns(2)
shift_id = left.selectbox("Shift", quality["shift_id"].unique(maintain_order=True).to_list()[::-1], key="spc_shift")
line_id = right.selectbox("Line", quality["line_id"].unique().sort().to_list(), key="spc_line")
row = quality.filter((pl.col("shift_id") == shift_id) & (pl.col("line_id") == line_id))
if not row.height:
    st.warning(f"No `gold/fact_quality` row for {line_id} in {shift_id}.")
    st.stop()
figures = row.row(0, named=True)
lcl, ucl = control_limits(figures["mean_mm"], figures["sigma_mm"])
tolerance = figures["tolerance_mm"]
columns = st.columns(5)
columns[0].metric("Parts measured", f"{figures['parts_measured']:,}")
columns[1].metric("Out of tolerance", f"{figures['out_of_tolerance']:,}")
columns[2].metric("Mean", "n/a" if figures["mean_mm"] is None else f"{1000 * figures['mean_mm']:+.1f} µm")
columns[3].metric("Cp", "n/a" if figures["cp"] is None else f"{figures['cp']:.2f}")
columns[4].metric("Cpk", "n/a" if figures["cpk"] is None else f"{figures['cpk']:.2f}")
parts = data.shifts_of(Table.PART_MEASUREMENTS, [shift_id]).filter(pl.col("line_id") == line_id).sort("measured_ts")
step = max(1, -(-parts.height // MAX_POINTS))
limits = {
    "UCL (mean + 3 sigma)": ucl,
    "LCL (mean - 3 sigma)": lcl,
    "USL (+tolerance)": tolerance,
    "LSL (-tolerance)": -tolerance if tolerance is not None else None,
}
st.altair_chart(charts.spc(parts.gather_every(step), limits), width="stretch")
st.caption(
    f"{parts.height:,} parts of {line_id} in {shift_id}"
    + (f"; every {step}th drawn" if step > 1 else "")
    + ". Control limits from the shift's own mean and sigma (gold); the tolerance is the PLC's `Quality.ToleranceMm`."
)
st.subheader("Capability per shift")
st.altair_chart(charts.per_shift(quality, ["cp", "cpk"], "Cp, Cpk"), width="stretch")
st.dataframe(quality, hide_index=True, width="stretch")
