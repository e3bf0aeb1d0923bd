"""Periodic signals of the variability engine: a value re-drawn every `interval_s` simulated seconds
and written to one Sim tag (quality error to `Sim.QualityErrorMm`, feed rate to `Sim.FeedRate`), and
their `[quality_error]` / `[feed_rate]` sections. `engine.py` documents them and schedules them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from .distributions import Distribution
from .injection import Injection, Section, iso
from .losses import FEED_RATE_MAX

QUALITY_ERROR_MAX = 1e3


class PeriodicConfig(Section):
    """A value re-drawn every `interval_s` simulated seconds and written to one Sim tag."""

    enabled: bool = True
    interval_s: float = Field(600.0, gt=0, description="simulated seconds between draws")
    distribution: Distribution | None = None

    @model_validator(mode="after")
    def _need_distribution(self) -> PeriodicConfig:
        if self.enabled and self.distribution is None:
            raise ValueError(
                'distribution is required (e.g. { kind = "uniform", low = 90.0, high = 110.0 }), or enabled = false'
            )
        return self


class QualityErrorConfig(PeriodicConfig):
    """Systematic quality error in mm, written to Sim.QualityErrorMm."""

    mode: Literal["per_interval"] = "per_interval"

    @model_validator(mode="after")
    def _range(self) -> QualityErrorConfig:
        if self.enabled and self.distribution is not None:
            lo, hi = self.distribution.support()
            # Unbounded tails (normal) are accepted; a bounded range outside the PLC's is a unit mistake.
            if (-math.inf < lo < -QUALITY_ERROR_MAX) or (QUALITY_ERROR_MAX < hi < math.inf):
                raise ValueError(f"quality_error: draws of {lo}..{hi} mm exceed the PLC's +-{QUALITY_ERROR_MAX:g} mm")
        return self


class FeedRateConfig(PeriodicConfig):
    """Infeed rate in parts/min, written to Sim.FeedRate (0 starves the line)."""

    @model_validator(mode="after")
    def _range(self) -> FeedRateConfig:
        if self.enabled and self.distribution is not None:
            lo, hi = self.distribution.support()
            if lo < 0 or hi > FEED_RATE_MAX:
                raise ValueError(
                    f"feed_rate: a {self.distribution.kind} distribution draws {lo}..{hi}; the PLC accepts "
                    f"0..{FEED_RATE_MAX:g} parts/min (use uniform, triangular or constant)"
                )
        return self


@dataclass
class PeriodicSignal:
    """One value re-drawn every interval and written to one Sim tag of one line."""

    line: str
    signal: str
    kind: str
    path: str
    unit: str
    cfg: PeriodicConfig
    rng: np.random.Generator
    due: datetime
    pending: float | None = None  # drawn for `due`, kept until written (a failed write retries the same value)


async def inject(p: PeriodicSignal, now: datetime, ctx: Injection) -> None:
    """Write the value drawn for `p.due` and its ground-truth row; the next draw is due an interval later."""
    assert p.cfg.distribution is not None  # noqa: S101 - an invariant, stated for the type checker
    hours = (p.due - ctx.started_at).total_seconds() / 3600.0
    if p.pending is None:
        p.pending = p.cfg.distribution.sample(p.rng, hours=hours)
    value = p.pending
    await ctx.port.write(p.line, p.path, value)
    context: dict[str, Any] = {"due_ts": iso(p.due), "interval_s": p.cfg.interval_s}
    if p.cfg.distribution.uses_hours:
        context["hours_since_start"] = hours
    ctx.emit(p.line, p.kind, p.cfg.distribution, value, now, None, p.unit, context)
    p.pending = None
    p.due = p.due + timedelta(seconds=p.cfg.interval_s)
