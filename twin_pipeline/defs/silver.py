"""Silver per shift: state intervals and part counts per line.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg
import polars as pl

from twin_pipeline.counters import increments, series
from twin_pipeline.data_quality import HEARTBEAT_TAG, heartbeat_silences
from twin_pipeline.layers import plc_gaps
from twin_pipeline.shift_assets import BRONZE, CALENDAR, publish, read_bronze, shift_asset
from twin_pipeline.profiles import LakeResource
from twin_pipeline.schemas import SILVER_PART_COUNTS
from twin_pipeline.states import REASON_TAG, STATE_TAG, state_intervals

COUNT_TAGS = {"produced": "Admin.ProdProcessedCount", "defective": "Admin.ProdDefectiveCount"}


def _lines(samples: pl.DataFrame) -> list[str]:
    return sorted(samples["line_id"].unique().to_list()) if samples.height else []


@shift_asset(
    key=["silver", "state_intervals"], group="silver", deps=[BRONZE],
    description="PackML state intervals per line, clipped to the shift, with time element, stop reason and "
                "gap flag (a collector outage or a silent heartbeat; the state at the shift start is the carried-in "
                "one).",
)
def silver_state_intervals(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    frames = []
    for shift_id in context.partition_keys:
        window = CALENDAR.window(shift_id)
        samples = read_bronze(lake.path(), shift_id, [STATE_TAG, REASON_TAG, HEARTBEAT_TAG])
        silences = [(g.line_id, g.start, g.end) for g in heartbeat_silences(samples, window)]
        frames.append(state_intervals(samples, window, _lines(samples), plc_gaps(lake.path(), window) + silences))
    out = pl.concat(frames)
    return dg.MaterializeResult(metadata={
        **publish(lake.path(), "silver/state_intervals", out, context.partition_keys),
        "in_gap_intervals": int(out["in_gap"].sum()) if out.height else 0,
    })


@shift_asset(
    key=["silver", "part_counts"], group="silver", deps=[BRONZE],
    description="Produced and defective parts per line and shift, from PLC counter increments that survive "
                "UInt32 wraps and PLC restarts (counted, so checks can explain them).",
)
def silver_part_counts(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    rows = []
    for shift_id in context.partition_keys:
        window = CALENDAR.window(shift_id)
        samples = read_bronze(lake.path(), shift_id, [*COUNT_TAGS.values(), "Admin.MachDesignSpeed"])
        before = samples.filter(pl.col("carried_in"))  # the counters' last values before the shift: the baseline
        inside = samples.filter(~pl.col("carried_in"))
        for line_id in _lines(samples):
            speed = samples.filter((pl.col("line_id") == line_id) & (pl.col("tag") == "Admin.MachDesignSpeed"))
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
    out = pl.DataFrame(rows, schema=SILVER_PART_COUNTS)
    return dg.MaterializeResult(metadata={
        **publish(lake.path(), "silver/part_counts", out, context.partition_keys),
        "produced": int(out["produced"].sum()) if out.height else 0,
        "counter_resets": int(out["produced_resets"].sum()) if out.height else 0,
    })


@shift_asset(
    key=["silver", "part_measurements"], group="silver", deps=[BRONZE],
    description="One row per inspected part: its measured deviation from nominal, the tolerance in effect, and "
                "whether it was out of tolerance (the PLC rejects exactly those).",
)
def silver_part_measurements(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from twin_pipeline.spc import SPC_TAGS, part_measurements

    out = pl.concat([part_measurements(read_bronze(lake.path(), shift_id, SPC_TAGS), shift_id)
                     for shift_id in context.partition_keys])
    return dg.MaterializeResult(metadata={
        **publish(lake.path(), "silver/part_measurements", out, context.partition_keys),
        "out_of_tolerance": int(out["out_of_tolerance"].sum()) if out.height else 0,
    })
