"""Bronze: a shift's slice of the edge samples, deduplicated and typed.

Duplicates by (line_id, tag, source_ts) can still reach the lake (two collectors on one line, a
replay across a collector restart beyond its watermark window); the earliest received copy wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from twin_pipeline.schemas import BRONZE_SAMPLES
from twin_pipeline.shift_calendar import ShiftWindow

KEY = ["line_id", "tag", "source_ts"]


@dataclass(frozen=True)
class BronzeStats:
    rows_in: int
    duplicates: int
    not_good: int  # status Uncertain or Bad


def bronze_samples(raw: pl.DataFrame, window: ShiftWindow) -> tuple[pl.DataFrame, BronzeStats]:
    """The shift's samples: one row per (line, tag, source_ts), with its shift id, sorted."""
    deduped = raw.sort(["received_ts", "seq"]).unique(subset=KEY, keep="first", maintain_order=True)
    out = (
        deduped.with_columns(pl.lit(window.shift_id).alias("shift_id"),
                             (pl.col("status_code") // (1 << 30)).eq(0).alias("is_good"))
        .select(list(BRONZE_SAMPLES))
        .sort(["line_id", "tag", "source_ts"])
    )
    stats = BronzeStats(rows_in=raw.height, duplicates=raw.height - deduped.height,
                        not_good=int((~out["is_good"]).sum()) if out.height else 0)
    return out, stats
