"""Part counts from PLC counter samples that survive UInt32 wraps and PLC restarts.

Between two samples of a cumulative counter the increment is the difference, except when the
value went down: then either the counter wrapped at 2^32 (the wrapped difference is plausible for
the elapsed time at the line's design speed) or the PLC restarted and counted from 0 again (the
new value is the increment). Every decision is counted so checks can explain a reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from twin_pipeline.schemas import SILVER_PART_COUNTS
from twin_pipeline.shift_calendar import ShiftWindow

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


#: The cumulative counters of a line, by what they count.
COUNT_TAGS = {"produced": "Admin.ProdProcessedCount", "defective": "Admin.ProdDefectiveCount"}
DESIGN_SPEED_TAG = "Admin.MachDesignSpeed"


def part_counts(samples: pl.DataFrame, window: ShiftWindow) -> pl.DataFrame:
    """Produced and defective parts per line in the shift (silver `part_counts`) from its bronze counter
    and design-speed samples, carried-in values being the baseline; parts made in planned breaks and
    every wrap, reset and glitch are counted apart."""
    shift_id = window.shift_id
    rows = []
    lines = sorted(samples["line_id"].unique().to_list()) if samples.height else []
    before = samples.filter(pl.col("carried_in"))  # the counters' last values before the shift: the baseline
    inside = samples.filter(~pl.col("carried_in"))
    for line_id in lines:
        speed = samples.filter((pl.col("line_id") == line_id) & (pl.col("tag") == DESIGN_SPEED_TAG))
        max_rate = (float(speed["value"].max()) if speed.height else 1000.0) / 60.0
        row = {"shift_id": shift_id, "line_id": line_id}
        for name, tag in COUNT_TAGS.items():
            base_values, base_seconds = series(before, line_id, tag)
            values, seconds = series(inside, line_id, tag)
            result = increments(values, seconds, max_rate,
                                baseline=base_values[-1] if base_values else None,
                                baseline_s=base_seconds[-1] if base_seconds else None)
            row[name] = result.total
            # parts made inside planned breaks (the line ran through them): not planned busy time
            in_breaks = 0
            for b_start, b_end in window.breaks:
                before_break = [(v, t) for v, t in zip(values, seconds) if t < b_start.timestamp()]
                during = [(v, t) for v, t in zip(values, seconds) if b_start.timestamp() <= t < b_end.timestamp()]
                if during:
                    base = before_break[-1] if before_break else (
                        (base_values[-1], base_seconds[-1]) if base_values else (None, None))
                    in_breaks += increments([v for v, _ in during], [t for _, t in during], max_rate,
                                            baseline=base[0], baseline_s=base[1]).total
            row[f"{name}_in_breaks"] = in_breaks
            row[f"{name}_wraps"] = result.wraps
            row[f"{name}_resets"] = result.resets
            row[f"{name}_glitches"] = result.glitches
        row["good"] = row["produced"] - row["defective"]  # all parts of the shift, breaks included
        rows.append(row)
    return pl.DataFrame(rows, schema=SILVER_PART_COUNTS)
