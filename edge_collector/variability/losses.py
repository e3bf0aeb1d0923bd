"""The variability engine's sections for the big losses beside breakdowns: episodes (starvation,
blocking, micro-stops, reduced speed: a Sim tag set for a drawn duration, again and again) and start-up
rejects, with the state the engine keeps per episode and their injectors. `engine.py` documents the
TOML and schedules them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydantic import model_validator

from plc.tagmap import PackMLState as S

from .distributions import BaseDistribution, Distribution
from .injection import Injection, Section, iso

FEED_RATE_MAX = 1e6  # the PLC's limit for rates (plc.line_model.validate_input)
STARTUP_REJECTS_MAX = 1_000_000


class EpisodeConfig(Section):
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


class StartupRejectsConfig(Section):
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


async def step_episode(e: Episode, now: datetime, ctx: Injection, stopping: Episode | None) -> None:
    """Start an episode (only in Execute, one stopping episode at a time: `stopping` is the line's
    episode holding it stopped now, if any) or end the running one."""
    assert e.cfg.interval is not None and e.cfg.duration is not None  # noqa: S101 - an invariant, stated for the type checker
    if not e.active:
        scheduled = e.due
        busy = e.stops_line and stopping is not None
        st = await ctx.port.state(e.line)
        if st.state != S.Execute or busy:
            e.due = now + timedelta(seconds=e.cfg.interval.sample(e.rng_interval))
            return
        e.duration = e.cfg.duration.sample(e.rng_duration)
        context: dict[str, Any] = {"due_ts": iso(scheduled), "duration_s": e.duration, "tag": e.path}
        if e.rng_value is not None:
            cfg = e.cfg
            assert isinstance(cfg, ReducedSpeedConfig) and cfg.speed_limit is not None  # noqa: S101 - an invariant, stated for the type checker
            e.value = cfg.speed_limit.sample(e.rng_value)
            await ctx.port.write(e.line, e.path, e.value)
            ctx.emit(e.line, f"{e.kind}_start", cfg.speed_limit, e.value, now, None, "parts/min", context)
        else:
            await ctx.port.write(e.line, e.path, True)
            ctx.emit(e.line, f"{e.kind}_start", e.cfg.duration, e.duration, now, None, "s", context)
        e.active, e.started = True, now
        e.due = now + timedelta(seconds=e.duration)
        return
    await ctx.port.write(e.line, e.path, 0.0 if e.rng_value is not None else False)
    assert e.started is not None  # noqa: S101 - an invariant, stated for the type checker
    lasted = (now - e.started).total_seconds()
    context = {"start_ts": iso(e.started), "drawn_duration_s": e.duration, "tag": e.path}
    ctx.emit(e.line, f"{e.kind}_end", e.cfg.duration, lasted, now, None, "s", context)
    e.active = False
    e.due = now + timedelta(seconds=e.cfg.interval.sample(e.rng_interval))


async def inject_startup_rejects(
    line: str, cfg: StartupRejectsConfig | None, rng: np.random.Generator | None, now: datetime, ctx: Injection
) -> None:
    """Before the Start of a recovery: the parts the restart will scrap."""
    if cfg is None or rng is None:
        return
    assert cfg.count is not None  # noqa: S101 - an invariant, stated for the type checker
    n = max(0, round(cfg.count.sample(rng)))
    if n == 0:
        return
    await ctx.port.write(line, "Sim.StartupRejects", n)
    ctx.emit(line, "startup_rejects", cfg.count, n, now, None, "parts", {"tag": "Sim.StartupRejects"})
