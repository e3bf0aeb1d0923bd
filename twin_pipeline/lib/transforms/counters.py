"""Part counts from PLC counter samples that survive UInt32 wraps and PLC restarts.

Between two samples of a cumulative counter the increment is the difference, except when the
value went down: then either the counter wrapped at 2^32 (the wrapped difference is plausible for
the elapsed time at the line's design speed) or the PLC restarted and counted from 0 again (the
new value is the increment). Every decision is counted so checks can explain a reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.contracts import SILVER_PART_COUNTS
from twin_pipeline.lib.transforms.bronze import sort_samples

UINT32 = 1 << 32
#: What a pair of consecutive counter samples is (`part_counts`): the first of its series, a step forward,
#: an implausible jump (a glitch, not counted), a wrap at 2^32, a restart from 0.
FIRST, STEP, GLITCH, WRAP, RESET = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class CounterIncrements:
    total: int
    wraps: int
    resets: int
    glitches: int  # implausibly large forward jumps, not counted


def increments(
    values: list[int],
    seconds: list[float],
    max_rate_per_s: float,
    baseline: int | None = None,
    baseline_s: float | None = None,
) -> CounterIncrements:
    """Sum of increments of a counter series (`values` at `seconds`), optionally continuing from a
    `baseline` sample before the first one (the previous shift's last value)."""
    if baseline is not None and baseline_s is not None:
        values, seconds = [baseline, *values], [baseline_s, *seconds]
    total = wraps = resets = glitches = 0
    for i in range(1, len(values)):
        prev, cur = values[i - 1], values[i]
        plausible = max_rate_per_s * max(seconds[i] - seconds[i - 1], 0.0) * 2 + 10
        if cur >= prev:
            step = cur - prev
            if step > plausible:
                glitches += 1
                continue
            total += step
        elif cur + UINT32 - prev <= plausible:
            wraps += 1
            total += cur + UINT32 - prev
        else:
            resets += 1
            total += cur
    return CounterIncrements(total, wraps, resets, glitches)


#: The cumulative counters of a line, by what they count.
COUNT_TAGS = {"produced": "Admin.ProdProcessedCount", "defective": "Admin.ProdDefectiveCount"}
DESIGN_SPEED_TAG = "Admin.MachDesignSpeed"
#: The plausible counting rate of a line without a design speed (parts per second).
DEFAULT_MAX_RATE_PER_S = 1000.0 / 60.0


def _ideal_time(produced: pl.DataFrame, samples: pl.DataFrame) -> pl.DataFrame:
    """Per line, the ideal time of the parts made (ISO 22400: ideal cycle time x parts, summed per speed):
    each counter increment weighted by the cycle time of the design speed in force when it was counted,
    so a changeover mid-shift weighs each product by its own parts, not by the last speed. Increments
    before the first known speed take the first one; a line without any speed has none (null)."""
    speeds = (
        samples.filter((pl.col("tag") == DESIGN_SPEED_TAG) & pl.col("is_good") & (pl.col("value") > 0))
        .select("line_id", "source_ts", (60.0 / pl.col("value")).alias("cycle_s"))
        .sort("source_ts")
    )
    parts = produced.filter(pl.col("increment") > 0).select("line_id", "source_ts", "increment").sort("source_ts")
    weighted = (
        parts.join_asof(speeds, on="source_ts", by="line_id", strategy="backward", check_sortedness=False)
        .join_asof(
            speeds.rename({"cycle_s": "first_cycle_s"}),
            on="source_ts",
            by="line_id",
            strategy="forward",
            check_sortedness=False,
        )
        .with_columns(pl.coalesce("cycle_s", "first_cycle_s").alias("cycle_s"))
    )
    return weighted.group_by("line_id").agg(
        pl.when(pl.col("cycle_s").is_not_null().all())
        .then((pl.col("increment") * pl.col("cycle_s")).sum())
        .alias("ideal_time_s")
    )


def part_counts(samples: pl.DataFrame, window: ShiftWindow) -> pl.DataFrame:
    """Produced and defective parts per line in the shift (silver `part_counts`) from its bronze counter
    and design-speed samples, carried-in values being the baseline; parts made in planned breaks and
    every wrap, reset and glitch are counted apart.

    The same rule as `increments()`, on every consecutive pair of a (line, counter) series at once:
    a pair's increment belongs to the sample that ends it (so to a break when that sample falls in one).
    """
    shift_id = window.shift_id
    lines = pl.DataFrame(
        {"line_id": sorted(samples["line_id"].unique().to_list()) if samples.height else []},
        schema={"line_id": pl.String},
    )
    rate = (
        samples.filter(pl.col("tag") == DESIGN_SPEED_TAG)
        .group_by("line_id")
        .agg((pl.col("value").max() / 60.0).alias("max_rate"))
    )
    counters = samples.filter(
        pl.col("tag").is_in(list(COUNT_TAGS.values())) & pl.col("is_good") & pl.col("value").is_not_null()
    )
    baseline = (
        counters.filter(pl.col("carried_in"))
        .filter(pl.col("source_ts") == pl.col("source_ts").max().over("line_id", "tag"))
        .sort("source_ts", "server_ts", "seq")
        .unique(subset=["line_id", "tag"], keep="last", maintain_order=True)
    )
    # bronze.ORDER: changes stamped in one tick follow server time, then the collector's sequence
    series = sort_samples(pl.concat([baseline, counters.filter(~pl.col("carried_in"))]))
    in_break = pl.lit(False)
    for b_start, b_end in window.breaks:
        in_break = in_break | ((pl.col("source_ts") >= b_start) & (pl.col("source_ts") < b_end))
    # `series` is sorted by (line, tag): a pair is two adjacent rows of one (line, tag), found by comparing
    # each row with the one before (a window `over("line_id", "tag")` hashes every row's strings instead)
    first = ((pl.col("line_id") != pl.col("line_id").shift(1)) | (pl.col("tag") != pl.col("tag").shift(1))).fill_null(
        True
    )
    cur = pl.col("value").cast(pl.Int64)
    prev = pl.when(first).then(None).otherwise(cur.shift(1))
    dt = (
        pl.when(first).then(None).otherwise(pl.col("source_ts") - pl.col("source_ts").shift(1)).dt.total_microseconds()
        / 1e6
    ).clip(lower_bound=0.0)
    plausible = pl.col("max_rate") * dt * 2 + 10
    kind = (
        pl.when(prev.is_null())
        .then(FIRST)
        .when(cur >= prev)
        .then(pl.when(cur - prev > plausible).then(GLITCH).otherwise(STEP))
        .when(cur + UINT32 - prev <= plausible)
        .then(WRAP)
        .otherwise(RESET)
    )
    pairs = (
        series.join(rate, on="line_id", how="left", maintain_order="left")
        .with_columns(pl.col("max_rate").fill_null(DEFAULT_MAX_RATE_PER_S))
        .with_columns(kind.alias("kind"), (~pl.col("carried_in") & in_break).alias("in_break"))
        .with_columns(
            pl.when(pl.col("kind") == STEP)
            .then(cur - prev)
            .when(pl.col("kind") == WRAP)
            .then(cur + UINT32 - prev)
            .when(pl.col("kind") == RESET)
            .then(cur)
            .otherwise(0)
            .alias("increment")
        )
    )
    ideal = _ideal_time(pairs.filter((pl.col("tag") == COUNT_TAGS["produced"]) & ~pl.col("in_break")), samples)
    totals = pairs.group_by("line_id", "tag").agg(
        pl.col("increment").sum().alias("total"),
        pl.col("increment").filter(pl.col("in_break")).sum().alias("in_breaks"),
        *[
            (pl.col("kind") == k).sum().alias(f"{name}s")
            for name, k in (("wrap", WRAP), ("reset", RESET), ("glitch", GLITCH))
        ],
    )
    out = lines
    for name, tag in COUNT_TAGS.items():
        mine = totals.filter(pl.col("tag") == tag).select(
            "line_id",
            pl.col("total").alias(name),
            pl.col("wraps").alias(f"{name}_wraps"),
            pl.col("resets").alias(f"{name}_resets"),
            pl.col("glitchs").alias(f"{name}_glitches"),
            pl.col("in_breaks").alias(f"{name}_in_breaks"),
        )
        out = out.join(mine, on="line_id", how="left")
    out = out.with_columns(pl.exclude("line_id").fill_null(0).cast(pl.Int64)).join(ideal, on="line_id", how="left")
    return out.with_columns(
        pl.lit(shift_id).alias("shift_id"), (pl.col("produced") - pl.col("defective")).alias("good")
    ).select(list(SILVER_PART_COUNTS))
