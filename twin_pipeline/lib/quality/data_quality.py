"""The data-quality rules behind the per-shift asset checks, as plain functions over frames (so
they are testable without Dagster and the checks stay thin)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.contracts import BRONZE_SAMPLES
from twin_pipeline.lib.edge_source import EdgeSource
from twin_pipeline.lib.transforms.bronze import KEY


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


def edge_keys(edges: EdgeSource, window: ShiftWindow) -> pl.DataFrame:
    """The distinct (line, tag, source_ts, value, value_text) keys the edge holds for the window."""
    return edges.scan("raw_samples", "source_ts", window.start, window.end).select(KEY).unique().collect()


def key_fingerprint(frame: pl.DataFrame) -> tuple[int, int, int]:
    """(distinct KEY values, and two sums over their hashes) of `frame`: equal fingerprints mean equal key
    sets but for a hash collision. Why: comparing two sets of millions of keys with anti-joins cost more
    than building bronze; hashing each key once and summing is a fraction of it. A mismatch is then
    explained by `reconcile`, exactly."""
    if not frame.height:
        return 0, 0, 0
    hashes = frame.select(pl.struct(KEY).hash().unique().alias("h"))
    sums = hashes.select(
        pl.len().alias("n"),
        (pl.col("h") % (1 << 32)).sum().alias("low"),  # 32-bit halves: a sum of millions cannot overflow
        (pl.col("h") // (1 << 32)).sum().alias("high"),
    ).row(0)
    return int(sums[0]), int(sums[1]), int(sums[2])


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
    edges: EdgeSource, window: ShiftWindow, line_ids: list[str], horizon: timedelta = timedelta(days=1)
) -> list[str]:
    """Lines for which the edge holds nothing at or after the shift end yet (the shift may still grow)."""
    later = (
        edges.scan("raw_samples", "source_ts", window.end, window.end + horizon).select("line_id").unique().collect()
    )
    done = set(later["line_id"].to_list())
    return [line for line in line_ids if line not in done]
