"""Part counts from PLC counter samples that survive UInt32 wraps and PLC restarts.

Between two samples of a cumulative counter the increment is the difference, except when the
value went down: then either the counter wrapped at 2^32 (the wrapped difference is plausible for
the elapsed time at the line's design speed) or the PLC restarted and counted from 0 again (the
new value is the increment). Every decision is counted so checks can explain a reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

UINT32 = 1 << 32


@dataclass(frozen=True)
class CounterIncrements:
    total: int
    wraps: int
    resets: int
    glitches: int  # implausibly large forward jumps, not counted


def increments(values: list[int], seconds: list[float], max_rate_per_s: float, baseline: int | None = None,
               baseline_s: float | None = None) -> CounterIncrements:
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


def series(samples: pl.DataFrame, line_id: str, tag: str) -> tuple[list[int], list[float]]:
    rows = samples.filter((pl.col("line_id") == line_id) & (pl.col("tag") == tag) & pl.col("is_good")
                          & pl.col("value").is_not_null()).sort("source_ts")
    return ([int(v) for v in rows["value"].to_list()],
            [t.timestamp() for t in rows["source_ts"].to_list()])
