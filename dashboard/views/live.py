"""Live line: each line's state, speed and the current shift so far, refreshed every second from the
edge tables (`twin_pipeline/lib/live.py`: the pipeline's own transforms over the shift cut at the plant's
now, so the figures are what the shift's gold will say). The reads are kept between ticks
(`dashboard/live_feed.py`): a tick reads only the collector's new commits."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import altair as alt
import polars as pl
import streamlit as st

from dashboard import data
from dashboard.live_feed import LiveFeed
from twin_pipeline.lib.live import TICK, LiveLine, LiveShift
from twin_pipeline.lib.location import Location
from twin_pipeline.lib.transforms.oee import percent

#: How often the page re-reads the edge (the collector commits about once a second).
REFRESH_S = 1.0
_LOCK = threading.Lock()  # one feed serves every session; its tick is not re-entrant


@st.cache_resource(show_spinner=False)
def _feed(lakes: tuple[tuple[str, str], ...], lake_uri: str | None) -> LiveFeed:
    return LiveFeed({e: Path(p) for e, p in lakes}, Location.of(lake_uri) if lake_uri else None, data.calendar())


def _shift() -> LiveShift | None:
    lakes = data.edge_lakes()
    if not lakes:
        return None
    where = data.root()
    feed = _feed(tuple(sorted((e, str(p)) for e, p in lakes.items())), where.uri)
    with _LOCK:
        return feed.shift()


def _clock(ts: datetime | None) -> str:
    return f"{ts:%H:%M:%S} UTC" if ts is not None else "n/a"


def _plant_time(ts: datetime) -> str:
    """The newest sample's source time, to the millisecond (bench/dashboard_live.py reads it off the page)."""
    return f"{ts:%H:%M:%S}.{ts.microsecond // 1000:03d} UTC"


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}" if minutes >= 60 else f"{minutes}:{s:02d}"


def _timeline(intervals: pl.DataFrame) -> alt.Chart:
    rows = intervals.select("line_id", "state_name", "start", "end", "duration_s").with_columns(
        pl.col("state_name").fill_null("Unknown")
    )
    return (
        alt.Chart(rows.to_pandas())
        .mark_bar()
        .encode(
            x=alt.X("start:T", title=None),
            x2="end:T",
            y=alt.Y("line_id:N", title=None),
            color=alt.Color("state_name:N", title="state"),
            tooltip=["line_id", "state_name", "start:T", "end:T", alt.Tooltip("duration_s:Q", format=".0f")],
        )
        .properties(height=40 + 30 * rows["line_id"].n_unique())
    )


def _card(line: LiveLine) -> None:
    row = line.oee
    with st.container(border=True):
        st.subheader(line.line_id)
        top = st.columns(3)
        since = f"since {_clock(line.state_since)}"
        top[0].metric(f"State {line.line_id}", line.state or "unknown", since, delta_color="off")
        speed = f"{line.speed:.0f}/min" if line.speed is not None else "n/a"
        design = f"design {line.design_speed:.0f}/min" if line.design_speed is not None else "no design speed"
        top[1].metric(f"Speed {line.line_id}", speed, design, delta_color="off")
        top[2].metric(f"OEE {line.line_id}", percent(row["oee"]))
        figures = st.columns(5)
        figures[0].metric(f"Availability {line.line_id}", percent(row["availability"]))
        figures[1].metric(f"Performance {line.line_id}", percent(row["performance"]))
        figures[2].metric(f"Quality {line.line_id}", percent(row["quality"]))
        figures[3].metric(f"Produced {line.line_id}", str(row["produced"]))
        figures[4].metric(f"Reject {line.line_id}", str(row["reject"]))
        if row["provisional"]:
            st.caption(f"Provisional: {row['provisional_reason']}")
        if line.last_stops:
            st.dataframe(
                pl.DataFrame(
                    [
                        {
                            "start": _clock(s["stop_start"]),
                            "duration": _duration(s["duration_s"]),
                            "reason": s["reason"] or "none",
                            "category": s["category"],
                            "ongoing": s["open_at_shift_end"],
                        }
                        for s in line.last_stops
                    ]
                ),
                hide_index=True,
                width="stretch",
            )
        else:
            st.caption("No stop this shift so far.")


@st.fragment(run_every=REFRESH_S)
def live() -> None:
    shift = _shift()
    if shift is None or not shift.lines:
        st.info(
            "No live data: the edge lake has no samples yet. Start the live twin (PLC simulator, edge collector, "
            "Dagster and this dashboard) with `make run` (or `twin up`), then this page follows it."
        )
        return
    window = shift.window
    st.caption(
        f"Shift {window.shift_id} ({window.name}) so far: plant time {_plant_time(shift.now - TICK)}, "
        f"{_duration(window.planned_busy_time_s)} of planned busy time. Figures as the shift's gold will compute "
        "them (the same transforms over the shift cut at now)."
    )
    for line in shift.lines:
        _card(line)
    if shift.intervals.height:
        st.altair_chart(_timeline(shift.intervals), width="stretch")


st.title("Live line")
live()
