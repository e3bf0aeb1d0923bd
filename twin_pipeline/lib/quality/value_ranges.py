"""What a plausible value of each line tag is, derived from the tag map (types, units, enumerations),
so the range check and anyone else read one rule instead of a second list of tags.

- Int32/UInt32 tags: integral and inside the type; `Status.StateCurrent` one of the PackML states;
  `Admin.StopReason.ID` 0, a fault code 1..999 or one of the tag map's stop reasons.
- Booleans: 0 or 1.
- Doubles in seconds or parts/min: finite and >= 0; in mm: finite and within +-`MAX_ABS_MM`.
Anything else: finite.
"""

from __future__ import annotations

import polars as pl

from plc.tagmap import TAGS, Tag
from twin_pipeline.lib.by_shift import split_runs

#: A measured deviation beyond this is a gauge fault, not a part (the tolerances are tenths of a mm).
MAX_ABS_MM = 100.0
_INT_BOUNDS = {"Int32": (-(2**31), 2**31 - 1), "UInt32": (0, 2**32 - 1)}


def _rule(tag: Tag) -> pl.Expr | None:
    """A polars expression on `value` that is True for a plausible value (None: no numeric rule)."""
    v = pl.col("value")
    if tag.path == "Status.StateCurrent":
        return v.is_in([float(s) for s in TAGS.states.values()])
    if tag.path == "Admin.StopReason.ID":
        return v.is_between(0, 999) & (v == v.floor()) | v.is_in([float(s) for s in TAGS.stop_reasons.values()])
    if tag.type in _INT_BOUNDS:
        lo, hi = _INT_BOUNDS[tag.type]
        return v.is_between(lo, hi) & (v == v.floor())
    if tag.type == "Boolean":
        return v.is_in([0.0, 1.0])
    if tag.type == "Double":
        unit = tag.unit[1] if tag.unit else None
        if unit in ("s", "parts/min"):
            return v.is_finite() & (v >= 0)
        if unit == "mm":
            return v.is_finite() & (v.abs() <= MAX_ABS_MM)
        return v.is_finite()
    return None


RULES: dict[str, pl.Expr] = {t.path: rule for t in TAGS.line_tags if (rule := _rule(t)) is not None}


def out_of_range(samples: pl.DataFrame) -> pl.DataFrame:
    """Good-status samples whose value breaks its tag's rule: line_id, tag, source_ts, value."""
    if not samples.height:
        return samples.select("line_id", "tag", "source_ts", "value")
    frames = [samples.select("line_id", "tag", "source_ts", "value").clear()]
    # bronze is sorted by tag within each line and shift: a tag's rows are a few slices, cut without copying
    for tag, rows in split_runs(samples, samples["tag"]).items():
        rule = RULES.get(str(tag))
        if rule is not None:
            bad = rows.filter(pl.col("is_good") & pl.col("value").is_not_null() & ~rule)
            frames.append(bad.select("line_id", "tag", "source_ts", "value"))
    return pl.concat(frames).sort("line_id", "tag", "source_ts")
