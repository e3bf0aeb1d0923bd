"""Statistical process control per line and shift: the measured deviations against the tolerance.

Specification limits are symmetric around nominal: LSL = -tolerance, USL = +tolerance (the PLC's
`Quality.ToleranceMm`). Cp = (USL - LSL) / 6 sigma; Cpk = min(USL - mean, mean - LSL) / 3 sigma;
None when there are fewer than two parts or no spread.
"""

from __future__ import annotations

import math

import polars as pl

from twin_pipeline.schemas import FACT_QUALITY

#: The bronze tags SPC reads.
SPC_TAGS = ("Quality.LastPartDeviation", "Quality.ToleranceMm")


def spc(shift_id: str, line_id: str, deviations: list[float], tolerance: float | None) -> dict[str, object]:
    n = len(deviations)
    mean = sum(deviations) / n if n else None
    sigma = math.sqrt(sum((d - mean) ** 2 for d in deviations) / (n - 1)) if n >= 2 and mean is not None else None
    cp = cpk = None
    if sigma and tolerance is not None and mean is not None:
        cp = 2 * tolerance / (6 * sigma)
        cpk = (tolerance - abs(mean)) / (3 * sigma)
    out = sum(abs(d) > tolerance for d in deviations) if tolerance is not None else None
    return {"shift_id": shift_id, "line_id": line_id, "parts_measured": n, "mean_mm": mean, "sigma_mm": sigma,
            "tolerance_mm": tolerance, "cp": cp, "cpk": cpk, "out_of_tolerance": out}


def spc_frame(samples: pl.DataFrame, shift_id: str) -> pl.DataFrame:
    """SPC rows for every line in this shift's bronze samples (parts: its own deviation samples; the
    tolerance in effect may be a carried-in value)."""
    rows = []
    if samples.height:
        good = samples.filter(pl.col("is_good") & pl.col("value").is_not_null()).sort("source_ts")
        for line_id in sorted(good["line_id"].unique().to_list()):
            mine = good.filter(pl.col("line_id") == line_id)
            deviations = mine.filter((pl.col("tag") == "Quality.LastPartDeviation")
                                     & ~pl.col("carried_in"))["value"].to_list()
            tolerance = mine.filter(pl.col("tag") == "Quality.ToleranceMm")["value"]
            rows.append(spc(shift_id, line_id, deviations, float(tolerance[-1]) if tolerance.len() else None))
    return pl.DataFrame(rows, schema=FACT_QUALITY)
