"""The data-quality rules behind the per-shift asset checks, as plain functions over frames (so
they are testable without Dagster and the checks stay thin)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from edge_collector.schemas import edge_table_path
from plc.tagmap import TAGS
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.contracts import BRONZE_SAMPLES
from twin_pipeline.lib.lake_io import scan_edge
from twin_pipeline.lib.transforms.bronze import KEY

#: Tags whose regular updates prove the collector was listening (the PLC publishes its accumulators
#: every `accumulator_period_s`, in every state).
HEARTBEAT_TAG = "Admin.AccTimeSinceReset"
#: A heartbeat silent for longer than this many typical intervals, and at least `MIN_GAP_S`, is a gap.
GAP_FACTOR = 5.0
MIN_GAP_S = 120.0


def schema_problems(frame_schema: pl.Schema) -> list[str]:
    """Differences between a bronze frame's schema and the bronze contract."""
    problems = [f"missing column {c}" for c in BRONZE_SAMPLES if c not in frame_schema]
    problems += [f"unexpected column {c}" for c in frame_schema if c not in BRONZE_SAMPLES]
    problems += [
        f"{c} is {frame_schema[c]}, contract says {t}"
        for c, t in BRONZE_SAMPLES.items()
        if c in frame_schema and frame_schema[c] != t
    ]
    return problems


def missing_tags(samples: pl.DataFrame, line_ids: list[str]) -> list[str]:
    """`line/tag` of subscribed tags with no Good or Uncertain value known by the shift's end (samples:
    the shift's bronze, carried-in values included, since an unchanged value is not sent again; a
    writable input stays UncertainInitialValue until somebody writes it, which is still a known value)."""
    expected = [t.path for t in TAGS.subscribed_line_tags()]
    not_bad = (pl.col("status_code") // (1 << 30)) != 2
    seen = set(samples.filter(not_bad).select("line_id", "tag").unique().iter_rows()) if samples.height else set()
    return [f"{line}/{tag}" for line in line_ids for tag in expected if (line, tag) not in seen]


@dataclass(frozen=True)
class Silence:
    line_id: str
    start: datetime
    end: datetime
    seconds: float


def heartbeat_silences(samples: pl.DataFrame, window: ShiftWindow) -> list[Silence]:
    """Stretches of the shift in which a line's heartbeat tag went silent for longer than expected."""
    out: list[Silence] = []
    beats = (
        samples.filter(
            (pl.col("tag") == HEARTBEAT_TAG)
            & (pl.col("source_ts") >= window.start)
            & (pl.col("source_ts") < window.end)
        )
        if samples.height
        else samples
    )
    for line_id in sorted(samples["line_id"].unique().to_list()) if samples.height else []:
        times = [
            window.start,
            *beats.filter(pl.col("line_id") == line_id).sort("source_ts")["source_ts"].to_list(),
            window.end,
        ]
        steps = [(a, b, b.timestamp() - a.timestamp()) for a, b in itertools.pairwise(times)]
        inner = sorted(s for _, _, s in steps[1:-1]) or [0.0]
        limit = max(MIN_GAP_S, GAP_FACTOR * inner[len(inner) // 2])
        out += [Silence(line_id, a, b, s) for a, b, s in steps if s > limit]
    return out


def edge_keys(lake: Path, window: ShiftWindow) -> pl.DataFrame:
    """The distinct (line, tag, source_ts, value, value_text) keys the edge holds for the window."""
    return (
        scan_edge(edge_table_path(lake, "raw_samples"), "raw_samples", "source_ts", window.start, window.end)
        .select(KEY)
        .unique()
        .collect()
    )


def reconcile(edge: pl.DataFrame, bronze: pl.DataFrame) -> tuple[int, int]:
    """(keys at the edge missing in bronze, keys in bronze the edge does not hold)."""
    b = bronze.select(KEY).unique() if bronze.height else pl.DataFrame(schema={k: BRONZE_SAMPLES[k] for k in KEY})
    e = edge.select(KEY) if edge.height else b.clear()
    # nulls_equal: the key holds value / value_text, one of which is null in every row
    return (
        e.join(b, on=KEY, how="anti", nulls_equal=True).height,
        b.join(e, on=KEY, how="anti", nulls_equal=True).height,
    )


def lines_not_caught_up(
    lake: Path, window: ShiftWindow, line_ids: list[str], horizon: timedelta = timedelta(days=1)
) -> list[str]:
    """Lines for which the edge holds nothing at or after the shift end yet (the shift may still grow)."""
    later = (
        scan_edge(edge_table_path(lake, "raw_samples"), "raw_samples", "source_ts", window.end, window.end + horizon)
        .select("line_id")
        .unique()
        .collect()
    )
    done = set(later["line_id"].to_list())
    return [line for line in line_ids if line not in done]
