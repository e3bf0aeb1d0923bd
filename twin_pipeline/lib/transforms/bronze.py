"""Bronze: a shift's slice of the edge samples, deduplicated and typed, plus the values it starts with.

Duplicates by (line_id, tag, source_ts, value) can still reach the lake (two collectors on one line, a
replay across a collector restart beyond its watermark window); the earliest received copy wins. A
different value at the same source timestamp is data (servers stamp two changes in one tick): rows are
ordered by (source_ts, server_ts, seq), ORDER below, so such ties resolve the same way everywhere.

Carried-in rows. A PLC publishes a tag only when it changes (the design speed once, at start; the
state when it changes), so a shift's own samples do not say what the line was doing at its start.
Each shift's bronze therefore also holds, per (line, tag), the last row before the shift start,
flagged `carried_in`: taken from the previous shift's bronze (which carries its own in, so a value
travels forward shift by shift however old it is), or, when that shift was never built, from the
edge table within `CARRY_LOOKBACK`. A line with no row at all within `CARRY_LOOKBACK` before the
shift is not carried: it is gone, not idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.contracts import BRONZE_SAMPLES

KEY = ["line_id", "tag", "source_ts", "value", "value_text"]
#: The order of a tag's samples: source time, then server time and the collector's sequence for
#: changes stamped in the same tick.
ORDER = ["source_ts", "server_ts", "seq"]
#: How far back a value is looked for in the edge table when the previous shift has no bronze, and
#: how long a line may be silent before it stops being carried into new shifts.
CARRY_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class BronzeStats:
    rows_in: int
    duplicates: int
    not_good: int  # status Uncertain or Bad
    carried_in: int


def typed(raw: pl.DataFrame, shift_id: str, carried_in: bool = False) -> pl.DataFrame:
    """Edge rows deduplicated (earliest received copy wins) and typed to the bronze contract. Duplicates
    are rare, so they are looked for by hash first; only then are the rows sorted by arrival."""
    deduped = raw
    if raw.height and raw.select(pl.struct(KEY).hash().n_unique()).item() < raw.height:  # a hash per key
        deduped = raw.sort(["received_ts", "seq"]).unique(subset=KEY, keep="first")
    return deduped.with_columns(
        pl.lit(shift_id).alias("shift_id"),
        (pl.col("status_code") // (1 << 30)).eq(0).alias("is_good"),
        pl.lit(carried_in).alias("carried_in"),
    ).select(list(BRONZE_SAMPLES))


def carry_in(before: pl.DataFrame, window: ShiftWindow) -> pl.DataFrame:
    """The last row per (line, tag) of `before` (bronze-shaped rows from before the window), as this
    shift's carried-in rows; lines silent for longer than `CARRY_LOOKBACK` are dropped."""
    if not before.height:
        return pl.DataFrame(schema=BRONZE_SAMPLES)
    earlier = before.filter(pl.col("source_ts") < window.start)
    alive = (
        earlier.group_by("line_id")
        .agg(pl.col("source_ts").max().alias("newest"))
        .filter(pl.col("newest") >= window.start - CARRY_LOOKBACK)["line_id"]
    )
    # the newest row per (line, tag): the rows at the newest source_ts (a hash aggregation), then the last
    # of those in ORDER (several only when a server stamped changes in one tick)
    last = (
        earlier.filter(
            pl.col("line_id").is_in(alive.implode())
            & (pl.col("source_ts") == pl.col("source_ts").max().over("line_id", "tag"))
        )
        .sort(ORDER)
        .unique(subset=["line_id", "tag"], keep="last", maintain_order=True)
    )
    return last.with_columns(pl.lit(window.shift_id).alias("shift_id"), pl.lit(True).alias("carried_in")).select(
        list(BRONZE_SAMPLES)
    )


def sort_samples(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` sorted by (line_id, tag, *ORDER). Why not `sort` on those columns: comparing two strings per
    row dominated the bronze step. Each string column is cast to an Enum of its sorted values (its code
    then sorts as the string does), the pair's code is packed with source_ts into one integer, which sorts
    several times faster; a frame whose span would overflow the packing sorts the plain way."""
    if frame.height < 2:
        return frame
    lines = frame["line_id"].unique().sort().drop_nulls()
    tags = frame["tag"].unique().sort().drop_nulls()
    ts = pl.col("source_ts").dt.epoch("us")
    span = frame.select((ts.max() - ts.min() + 1).alias("span"))["span"][0]
    if (
        span is None
        or frame["line_id"].null_count()
        or frame["tag"].null_count()
        or span * lines.len() * tags.len() >= 1 << 62
    ):
        return frame.sort(["line_id", "tag", *ORDER])
    pair = pl.col("line_id").cast(pl.Enum(lines)).to_physical().cast(pl.Int64) * tags.len() + pl.col("tag").cast(
        pl.Enum(tags)
    ).to_physical().cast(pl.Int64)
    return frame.sort(pair * span + (ts - ts.min()), pl.col("server_ts"), pl.col("seq"))


def bronze_samples(raw: pl.DataFrame, window: ShiftWindow, before: pl.DataFrame) -> tuple[pl.DataFrame, BronzeStats]:
    """The shift's samples, one row per (line, tag, source_ts, value), with the carried-in rows, sorted."""
    own = typed(raw, window.shift_id)
    carried = carry_in(before, window)
    out = sort_samples(pl.concat([carried, own]))
    stats = BronzeStats(
        rows_in=raw.height,
        duplicates=raw.height - own.height,
        not_good=int((~own["is_good"]).sum()) if own.height else 0,
        carried_in=carried.height,
    )
    return out, stats
