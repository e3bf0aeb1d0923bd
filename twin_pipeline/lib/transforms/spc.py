"""Statistical process control per line and shift: the measured deviations against the tolerance.

Specification limits are symmetric around nominal: LSL = -tolerance, USL = +tolerance (the PLC's
`Quality.ToleranceMm`). Cp = (USL - LSL) / 6 sigma; Cpk = min(USL - mean, mean - LSL) / 3 sigma;
None when there are fewer than two parts or no spread.
"""

from __future__ import annotations

import polars as pl

from twin_pipeline.lib.contracts import FACT_QUALITY, SILVER_PART_MEASUREMENTS

#: The bronze tags SPC reads.
SPC_TAGS = ("Quality.LastPartDeviation", "Quality.ToleranceMm")


def spc(shift_id: str, line_id: str, deviations: pl.Series, tolerance: float | None) -> dict[str, object]:
    n, mean, sigma = (
        deviations.to_frame("d")
        .select(pl.len(), pl.col("d").mean().alias("mean"), pl.col("d").std(ddof=1).alias("sigma"))
        .row(0)
    )
    cp = cpk = None
    if sigma and tolerance is not None and mean is not None:
        cp = 2 * tolerance / (6 * sigma)
        cpk = (tolerance - abs(mean)) / (3 * sigma)
    out = int((deviations.abs() > tolerance).sum()) if tolerance is not None else None
    return {
        "shift_id": shift_id,
        "line_id": line_id,
        "parts_measured": n,
        "mean_mm": mean,
        "sigma_mm": sigma,
        "tolerance_mm": tolerance,
        "cp": cp,
        "cpk": cpk,
        "out_of_tolerance": out,
    }


def part_measurements(samples: pl.DataFrame, shift_id: str) -> pl.DataFrame:
    """One row per inspected part of the shift (each `Quality.LastPartDeviation` sample of its own), with
    the tolerance in effect when it was measured (an as-of join; the first may be carried in)."""
    if not samples.height:
        return pl.DataFrame(schema=SILVER_PART_MEASUREMENTS)
    good = samples.filter(pl.col("is_good") & pl.col("value").is_not_null())
    parts = (
        good.filter((pl.col("tag") == "Quality.LastPartDeviation") & ~pl.col("carried_in"))
        .select("line_id", pl.col("source_ts").alias("measured_ts"), pl.col("value").alias("deviation_mm"))
        .sort("measured_ts")
    )
    tolerance = (
        good.filter(pl.col("tag") == "Quality.ToleranceMm")
        .select("line_id", pl.col("source_ts").alias("measured_ts"), pl.col("value").alias("tolerance_mm"))
        .sort("measured_ts")
    )
    joined = parts.join_asof(
        tolerance, on="measured_ts", by="line_id", strategy="backward", check_sortedness=False
    )  # both sorted by measured_ts above
    return (
        joined.with_columns(
            pl.lit(shift_id).alias("shift_id"),
            (pl.col("deviation_mm").abs() > pl.col("tolerance_mm")).alias("out_of_tolerance"),
        )
        .select(list(SILVER_PART_MEASUREMENTS))
        .sort("line_id", "measured_ts")
    )


def spc_frame(measurements: pl.DataFrame, shift_id: str) -> pl.DataFrame:
    """SPC rows for every line with parts measured in the shift (silver part measurements)."""
    rows = []
    mine_all = measurements.filter(pl.col("shift_id") == shift_id) if measurements.height else measurements
    for line_id in sorted(mine_all["line_id"].unique().to_list()) if mine_all.height else []:
        mine = mine_all.filter(pl.col("line_id") == line_id).sort("measured_ts")
        tolerance = mine["tolerance_mm"].drop_nulls()
        row = spc(shift_id, line_id, mine["deviation_mm"], float(tolerance[-1]) if tolerance.len() else None)
        if tolerance.len():  # against the tolerance in effect at each part, should it have changed in the shift
            row["out_of_tolerance"] = int(mine["out_of_tolerance"].sum())
        rows.append(row)
    return pl.DataFrame(rows, schema=FACT_QUALITY)


#: Control limits of an individuals chart: the mean plus and minus this many sigma.
CONTROL_SIGMAS = 3.0


def control_limits(mean: float | None, sigma: float | None) -> tuple[float | None, float | None]:
    """(LCL, UCL) of a shift's individuals chart from its `fact_quality` mean and sigma: the process's own
    spread, beside the specification limits (+-tolerance) that Cp and Cpk compare it with."""
    if mean is None or sigma is None:
        return None, None
    return mean - CONTROL_SIGMAS * sigma, mean + CONTROL_SIGMAS * sigma
