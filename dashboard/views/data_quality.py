"""Data quality per shift: unwatched time (collector gaps and silent lines, from `silver/state_intervals`
and gold's unknown time), quarantined edge rows with their reasons, provisional OEE and why, and the
failed asset checks (from Dagster), each shift linking to its assets in the Dagster UI."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, data
from dashboard.dagster_checks import DagsterUnreachable, asset_url, failed_checks
from dashboard.selection import nothing_yet, sidebar
from twin_pipeline.lib.contracts import Table
from twin_pipeline.lib.settings import dagster_url


@st.cache_data(show_spinner=False, ttl=30)
def _failed(url: str, shift_ids: tuple[str, ...]) -> pl.DataFrame | str:
    try:
        return failed_checks(url, shift_ids)
    except DagsterUnreachable as exc:
        return str(exc)


selection = sidebar()
oee = selection.rows(data.table(Table.OEE_SHIFT)).sort("shift_start", "line_id")
st.title("Data quality")
if not oee.height:
    nothing_yet("shifts", Table.OEE_SHIFT)
ui = dagster_url()
shift_ids = oee["shift_id"].unique(maintain_order=True).to_list()
windows = [data.calendar().window(s) for s in shift_ids]
intervals = data.shifts_of(Table.STATE_INTERVALS, shift_ids, ["shift_id", "line_id", "duration_s", "in_gap"])
gaps = (
    intervals.filter(pl.col("in_gap") & pl.col("line_id").is_in(selection.lines))
    .group_by("shift_id", "line_id")
    .agg(gap_s=pl.col("duration_s").sum())
)
quarantine = data.edge_rows("quarantine", "received_ts", windows[0].start, windows[-1].end)
if quarantine.height:
    starts = pl.DataFrame({"shift_id": [w.shift_id for w in windows], "from": [w.start for w in windows]})
    quarantine = (
        quarantine.sort("received_ts")
        .join_asof(starts.sort("from"), left_on="received_ts", right_on="from")
        .filter(pl.col("line_id").is_in(selection.lines) | pl.col("line_id").is_null())
    )
    quarantined = quarantine.group_by("shift_id", "line_id").agg(quarantined=pl.len())
else:
    quarantined = pl.DataFrame(schema={"shift_id": pl.String, "line_id": pl.String, "quarantined": pl.UInt32})
failed = _failed(ui, tuple(shift_ids))
per_shift = (
    oee.select("shift_id", "line_id", "unknown_time_s", "provisional", "provisional_reason")
    .join(gaps, on=["shift_id", "line_id"], how="left")
    .join(quarantined, on=["shift_id", "line_id"], how="left")
    .with_columns(pl.col("gap_s").fill_null(0.0), pl.col("quarantined").fill_null(0))
)
if isinstance(failed, pl.DataFrame):
    per_shift = per_shift.join(
        failed.group_by("shift_id").agg(failed_checks=pl.col("check").unique().sort().str.join(", ")),
        on="shift_id",
        how="left",
    )
per_shift = per_shift.with_columns(
    dagster=pl.col("shift_id").map_elements(lambda s: asset_url(ui, "gold/fact_oee_shift", s), return_dtype=pl.String)
)

columns = st.columns(4)
columns[0].metric("Unwatched time", f"{per_shift['gap_s'].sum() / 60:,.1f} min", help="Collector gaps, silent lines")
columns[1].metric("Quarantined rows", f"{int(per_shift['quarantined'].sum()):,}", help="Edge rows kept aside, with why")
columns[2].metric("Provisional line-shifts", f"{int(per_shift['provisional'].sum())} of {per_shift.height}")
columns[3].metric("Failed checks", f"{failed.height}" if isinstance(failed, pl.DataFrame) else "n/a")
st.altair_chart(
    charts.per_shift(
        per_shift.with_columns(gap_min=pl.col("gap_s") / 60), ["gap_min"], "unwatched (min)", ".1f", bars=True
    ),
    width="stretch",
)
if isinstance(failed, str):
    st.warning(f"Check results come from Dagster: {failed}. Start it (`make run`) or set TWIN_DAGSTER_URL.")
st.dataframe(
    per_shift,
    hide_index=True,
    width="stretch",
    column_config={
        "dagster": st.column_config.LinkColumn("Dagster", display_text="open"),
        "gap_s": st.column_config.NumberColumn("gaps (s)", format="%.0f"),
        "unknown_time_s": st.column_config.NumberColumn("unknown (s)", format="%.0f"),
    },
)
if isinstance(failed, pl.DataFrame) and failed.height:
    st.subheader("Failed checks")
    st.dataframe(
        failed.with_columns(
            dagster=pl.struct("asset", "shift_id").map_elements(
                lambda r: asset_url(ui, r["asset"], r["shift_id"]), return_dtype=pl.String
            )
        ),
        hide_index=True,
        width="stretch",
        column_config={"dagster": st.column_config.LinkColumn("Dagster", display_text="open")},
    )
if quarantine.height:
    st.subheader("Quarantined rows by reason")
    st.bar_chart(quarantine.group_by("reason").agg(rows=pl.len()).sort("rows", descending=True), x="reason", y="rows")
