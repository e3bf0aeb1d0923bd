"""The variability engine's sections for the big losses beside breakdowns: episodes (starvation,
blocking, micro-stops, reduced speed: a Sim tag set for a drawn duration, again and again) and start-up
rejects, with the state the engine keeps per episode. `engine.py` documents the TOML and drives them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from .distributions import BaseDistribution, Distribution

FEED_RATE_MAX = 1e6  # the PLC's limit for rates (plc.line_model.validate_input)
STARTUP_REJECTS_MAX = 1_000_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EpisodeConfig(_Model):
    """Episodes (starvation, blocking, micro-stops, reduced speed): one starts `interval` simulated seconds
    after the previous one ended, provided the line is in Execute then (else that draw is skipped and the
    next interval drawn), and lasts `duration` seconds."""

    enabled: bool = True
    interval: Distribution | None = None
    duration: Distribution | None = None

    @model_validator(mode="after")
    def _check(self) -> EpisodeConfig:
        if not self.enabled:
            return self
        for name in ("interval", "duration"):
            dist: BaseDistribution | None = getattr(self, name)
            if dist is None:
                raise ValueError(f"{name} is required (a distribution of seconds), or enabled = false")
            if dist.support()[0] < 0:
                raise ValueError(f"{name}: a {dist.kind} distribution can draw negative seconds")
        return self


class ReducedSpeedConfig(EpisodeConfig):
    """Running below design speed: Sim.SpeedLimit (parts/min, drawn per episode) while it lasts."""

    speed_limit: Distribution | None = None

    @model_validator(mode="after")
    def _limit(self) -> ReducedSpeedConfig:
        if self.enabled:
            if self.speed_limit is None:
                raise ValueError(
                    'speed_limit is required (parts/min, e.g. { kind = "uniform", low = 60.0, high = 80.0 })'
                )
            lo, hi = self.speed_limit.support()
            if lo <= 0 or hi > FEED_RATE_MAX:
                raise ValueError(
                    f"speed_limit: draws of {lo}..{hi} parts/min; a limit must be in (0, {FEED_RATE_MAX:g}] "
                    "(use uniform, triangular or constant)"
                )
        return self


class StartupRejectsConfig(_Model):
    """Start-up rejects: before each Start of a recovery the engine writes Sim.StartupRejects = round(draw)
    (parts rejected after the restart, whatever they measure)."""

    enabled: bool = True
    count: Distribution | None = None

    @model_validator(mode="after")
    def _check(self) -> StartupRejectsConfig:
        if self.enabled:
            if self.count is None:
                raise ValueError('count is required (parts, e.g. { kind = "uniform", low = 2.0, high = 8.0 })')
            lo, hi = self.count.support()
            if lo < 0 or hi > STARTUP_REJECTS_MAX:
                raise ValueError(f"count: draws of {lo}..{hi}; the PLC accepts 0..{STARTUP_REJECTS_MAX} parts")
        return self


@dataclass
class Episode:
    """One kind of episode on one line: a Sim tag set for a drawn duration, again and again."""

    line: str
    kind: str  # injected_events kinds: <kind>_start, <kind>_end
    path: str
    cfg: EpisodeConfig
    rng_interval: np.random.Generator
    rng_duration: np.random.Generator
    due: datetime
    stops_line: bool  # starvation, blocking and micro-stops exclude each other (and defer faults)
    rng_value: np.random.Generator | None = None
    active: bool = False
    started: datetime | None = None
    duration: float = 0.0
    value: float = 0.0


#: Episode kinds: (config field, injected kind, Sim tag, whether it stops production).
EPISODES = (
    ("starvation", "starvation", "Sim.InfeedEmpty", True),
    ("blocking", "blocking", "Sim.OutfeedBlocked", True),
    ("micro_stops", "micro_stop", "Sim.MicroStop", True),
    ("reduced_speed", "reduced_speed", "Sim.SpeedLimit", False),
)
