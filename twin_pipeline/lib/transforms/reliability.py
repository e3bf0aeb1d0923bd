"""Reliability per line: observed failures, MTBF and MTTR, and a Weibull fit of the times to failure
next to the distribution the variability engine injected (the ground truth of the twin).

Time to failure is measured the way the engine draws it: calendar time from the line's entry into
Execute after the previous repair to the next fault (holds and suspensions inside count). A fault is
the start of a run of fault-element states (Aborting, Aborted, Clearing); its repair time is that
run's length. The fit is a maximum-likelihood Weibull (location 0) over the failures of a trailing
window of shifts, with the uptime still running at the window end as a right-censored observation
(scipy's `CensoredData`): with a handful of failures per shift, a per-shift fit would be noise.
Stretches nobody watched (gaps, unknown state) break the chain: the uptime around them is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

#: Fewer observed failures than this give no fit (shape and scale null).
MIN_FAILURES_FOR_FIT = 3


@dataclass
class Failures:
    """What a line's state history says about its failures."""

    times_to_failure_s: list[float] = field(default_factory=list)
    censored_s: list[float] = field(default_factory=list)  # uptimes still running when observation ended
    repair_s: list[float] = field(default_factory=list)
    fault_starts: list[datetime] = field(default_factory=list)


def _runs(intervals: pl.DataFrame) -> list[tuple[str, bool, datetime, datetime]]:
    """Consecutive intervals of one line merged into runs of (element, watched, start, end); the cuts
    at shift and break boundaries disappear."""
    runs: list[tuple[str, bool, datetime, datetime]] = []
    for r in intervals.sort("start").iter_rows(named=True):
        element, watched = r["time_element"], not r["in_gap"] and r["time_element"] != "unknown"
        if runs and runs[-1][0] == element and runs[-1][1] == watched and runs[-1][3] == r["start"]:
            runs[-1] = (element, watched, runs[-1][2], r["end"])
        else:
            runs.append((element, watched, r["start"], r["end"]))
    return runs


def failures(intervals: pl.DataFrame) -> Failures:
    """Failures of one line from its state intervals (any number of consecutive shifts)."""
    out = Failures()
    uptime_start: datetime | None = None
    previous: str | None = None
    runs = _runs(intervals)
    for element, watched, start, end in runs:
        if not watched:
            uptime_start = None
        elif element == "fault":
            if uptime_start is not None:
                out.times_to_failure_s.append((start - uptime_start).total_seconds())
            out.repair_s.append((end - start).total_seconds())
            out.fault_starts.append(start)
            uptime_start = None
        elif element == "production" and uptime_start is None and previous is not None and previous != "production":
            uptime_start = start  # an observed entry into Execute
        previous = element if watched else None
    if uptime_start is not None and runs:
        out.censored_s.append((runs[-1][3] - uptime_start).total_seconds())
    return out


@dataclass(frozen=True)
class WeibullFit:
    shape: float | None
    scale: float | None
    failures: int
    censored: int


def fit_weibull(times_to_failure_s: list[float], censored_s: list[float]) -> WeibullFit:
    """Maximum-likelihood Weibull (location 0) with right-censoring; None when too few failures (and
    shape None when every observed time is the same)."""
    n, c = len(times_to_failure_s), len(censored_s)
    positive = [t for t in times_to_failure_s if t > 0]
    if len(positive) < MIN_FAILURES_FOR_FIT:
        return WeibullFit(None, None, n, c)
    if np.ptp(positive) == 0:  # identical times (a constant TTF): no spread, no finite shape to report
        return WeibullFit(None, float(positive[0]), n, c)
    shape, scale = _weibull_mle(positive, [t for t in censored_s if t > 0])
    return WeibullFit(shape, scale, n, c)


def _weibull_mle(uncensored: list[float], censored: list[float]) -> tuple[float, float]:
    """The exact censored MLE: the shape k is the root of the profile-likelihood equation
    sum(x^k ln x) / sum(x^k) - 1/k - mean(ln t) = 0 (x: every time, t: the failures), increasing in k;
    then scale = (sum(x^k) / failures)^(1/k). Times are divided by the largest first (no overflow for large
    k). A root finder on one equation: about 1 ms, where scipy's generic `weibull_min.fit` on
    `CensoredData` (a Nelder-Mead search) took about 0.3 s a fit, 42 fits in a week's backfill."""
    x = np.asarray([*uncensored, *censored], dtype=float)
    top = float(x.max())
    log_x = np.log(x / top)
    mean_log_t = float(np.log(np.asarray(uncensored, dtype=float) / top).mean())

    def score(k: float) -> float:
        w = np.exp(k * log_x)
        return float((w * log_x).sum() / w.sum()) - 1.0 / k - mean_log_t

    low, high = 1e-3, 1.0
    while score(high) < 0 and high < 1e12:
        high *= 10.0
    while score(low) > 0 and low > 1e-12:
        low /= 10.0
    from scipy import optimize  # lazy: importing scipy.optimize cost every Dagster process about 1 s

    shape = float(optimize.brentq(score, low, high, xtol=1e-12, rtol=1e-12))
    scale = top * float(np.exp(shape * log_x).sum() / len(uncensored)) ** (1.0 / shape)
    return shape, scale


@dataclass(frozen=True)
class Injected:
    """The engine's time-to-failure and repair distributions for a line, as it recorded them."""

    ttf_distribution: str | None
    ttf_params: str | None  # JSON: the distribution's own parameters
    weibull_shape: float | None  # the TTF distribution as a Weibull where it is one (exponential: shape 1)
    weibull_scale: float | None
    repair_distribution: str | None
    faults: int
    mean_repair_s: float | None


def _as_weibull(params: dict) -> tuple[float | None, float | None]:
    kind = params.get("distribution")
    if kind == "weibull":
        return float(params["shape"]), float(params["scale"])
    if kind == "exponential":
        return 1.0, float(params["mtbf"])
    return None, None


def injected(events: pl.DataFrame) -> Injected:
    """From one line's `injected_events` rows: the last TTF distribution used, and the shift's faults."""
    starts = events.filter(pl.col("kind") == "fault_start").sort("event_ts", "seq")
    ends = events.filter(pl.col("kind") == "fault_end").sort("event_ts", "seq")
    if not starts.height:
        return Injected(None, None, None, None, None, 0, None)
    params = json.loads(starts["params"][-1])
    shape, scale = _as_weibull(params)
    own = {k: v for k, v in params.items() if k not in ("distribution", "unit", "context")}
    return Injected(
        ttf_distribution=starts["distribution"][-1],
        ttf_params=json.dumps(own, sort_keys=True),
        weibull_shape=shape,
        weibull_scale=scale,
        repair_distribution=ends["distribution"][-1] if ends.height else None,
        faults=starts.height,
        mean_repair_s=float(ends["value"].mean()) if ends.height else None,  # type: ignore[arg-type]  # a float column's mean
    )


def roll_up(rows: pl.DataFrame) -> tuple[float | None, float | None]:
    """MTBF and MTTR over several `fact_reliability` rows (lines, shifts), as ratios of sums like OEE's
    roll-up: production time over failures, and the failures' repair time (mttr_s x failures) over
    failures. None without a failure."""
    n = int(rows["failures"].sum()) if rows.height else 0
    if not n:
        return None, None
    production = float(rows["production_time_s"].sum())
    repair = float((rows["mttr_s"].fill_null(0.0) * rows["failures"]).sum())
    return production / n, repair / n


def median_ranks(times_to_failure_s: list[float]) -> pl.DataFrame:
    """A Weibull probability plot's points: each observed time to failure (sorted) with its median rank
    (Bernard: (i - 0.3) / (n + 0.4)), and the plot's axes ln t and ln(-ln(1 - F)), on which a Weibull
    is a straight line of slope shape."""
    t = sorted(x for x in times_to_failure_s if x > 0)
    n = len(t)
    ranks = [(i + 1 - 0.3) / (n + 0.4) for i in range(n)]
    return pl.DataFrame(
        {
            "ttf_s": t,
            "median_rank": ranks,
            "ln_t": np.log(t) if n else [],
            "weibull_y": np.log(-np.log(1.0 - np.asarray(ranks))) if n else [],
        },
        schema={"ttf_s": pl.Float64, "median_rank": pl.Float64, "ln_t": pl.Float64, "weibull_y": pl.Float64},
    )


def weibull_line(shape: float, scale: float, t: list[float]) -> list[float]:
    """ln(-ln(1 - F(t))) of a Weibull(shape, scale): shape x (ln t - ln scale), the plot's straight line."""
    return [shape * (float(np.log(x)) - float(np.log(scale))) for x in t]
