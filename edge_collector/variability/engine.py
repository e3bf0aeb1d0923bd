"""The variability engine: injects statistical "reality" (breakdowns, repairs, quality drift, feed
rate changes, starvation, blocking, micro-stops, reduced speed, start-up rejects) into the PLC
through its `Sim.*` and `Command.*` tags, and writes the ground truth of
every injection to `injected_events`.

Time. The engine lives in the PLC's simulated time and never sleeps on the wall clock: whoever
runs it calls `start(now)` once and then `on_clock(now)` on every PLC clock notification
(`Application.Clock.Now`; in tests after each `plc.step()`), and the engine performs every action
due at or before `now`, in time order. So a twin at 1000x speed, in step mode, or catching up
gives the same draws. `next_due()` tells a step-mode driver when the next action is due.

Faults. Time to failure (TTF) counts in calendar simulated time from the end of the last repair,
i.e. from the instant the line re-entered Execute, read from the PLC's own source timestamp of
`Status.StateCurrent` (so polling latency does not bias it; holds or suspensions inside that span
count as well). For the first fault it counts from max(Execute entry, engine start). When the TTF
has elapsed the engine writes `Sim.FaultCode` (drawn) then `Sim.FaultRequest = True` (the line
aborts), provided the line is in a producing state (Execute, Starting, Holding/Held/Unholding,
Suspending/Suspended/Unsuspending); if an operator has stopped it or it is already aborted, the
draw is abandoned (no injection, no row) and a fresh TTF starts at the next Execute entry. The
repair time counts from the fault write; then the engine sends Clear, and drives the line back
through Reset (once Stopped) and Start (once Idle) by reading the state every `state_poll_s`,
each command sent at most once per state visit. The next TTF starts when the line is back in Execute.
If an operator clears the fault before the repair time is over, the fault ends then (fault_end with
`cleared_by = "external"`) and the engine finishes the restart. The Reset/Start commands of a
recovery are part of its fault_end, not injections of their own.

Rows. One row per injection (`fault_start`, `fault_end`, `feed_rate`, `quality_shift`, the episodes'
`<kind>_start`/`<kind>_end`, `startup_rejects`), stamped
with the simulated time the write was made. `params` is the distribution's `describe()` plus
`unit` and a `context` object (scheduled time, the other draws of the cycle, ...), so the ground
truth is complete: drawn TTF (fault_start.value), fault code (fault_code), drawn repair time
(fault_end.value), the Execute entry the TTF counted from, and the actual times of each write.

Randomness. Each (line, signal) has its own PCG64 generator seeded by
`SeedSequence(seed, spawn_key=(crc32(line), crc32(signal)))`, so adding a line or a signal, or
disabling one, does not change any other draw.

Config (TOML under the collector's `[variability]`; a line's section replaces the default's
section of the same name, whole):

    [variability]
    enabled = true
    seed = 42
    state_poll_s = 1.0

    [variability.default.faults]
    time_to_failure = { kind = "weibull", shape = 1.5, scale = 14400.0 }   # seconds
    repair_time = { kind = "lognormal", median = 600.0, sigma = 0.5 }       # seconds
    fault_code = { kind = "categorical", weights = { 101 = 5.0, 205 = 3.0, 317 = 2.0 } }

    [variability.default.quality_error]          # written to Sim.QualityErrorMm
    mode = "per_interval"
    interval_s = 900.0
    distribution = { kind = "normal", mean = 0.0, sd = 0.01, drift_per_hour = 0.0005 }

    [variability.default.feed_rate]              # written to Sim.FeedRate, parts/min
    interval_s = 600.0
    distribution = { kind = "uniform", low = 95.0, high = 115.0 }

    [variability.default.starvation]             # Sim.InfeedEmpty: the line starves
    interval = { kind = "exponential", mtbf = 5400.0 }   # seconds from one episode's end to the next
    duration = { kind = "lognormal", median = 90.0, sigma = 0.6 }

    [variability.default.blocking]               # Sim.OutfeedBlocked: the line is blocked
    interval = { kind = "exponential", mtbf = 7200.0 }
    duration = { kind = "lognormal", median = 60.0, sigma = 0.6 }

    [variability.default.micro_stops]            # Sim.MicroStop: seconds at speed 0, still in Execute
    interval = { kind = "exponential", mtbf = 300.0 }
    duration = { kind = "lognormal", median = 4.0, sigma = 0.5 }

    [variability.default.reduced_speed]          # Sim.SpeedLimit: below design speed for a while
    interval = { kind = "exponential", mtbf = 7200.0 }
    duration = { kind = "lognormal", median = 900.0, sigma = 0.5 }
    speed_limit = { kind = "uniform", low = 60.0, high = 80.0 }          # parts/min

    [variability.default.startup_rejects]        # Sim.StartupRejects before each Start of a recovery
    count = { kind = "uniform", low = 2.0, high = 8.0 }                  # parts, rounded

    [variability.lines.L2.faults]
    enabled = false

Episodes (starvation, blocking, micro-stops, reduced speed) write `<kind>_start` (value: the drawn
duration in s, for reduced speed the limit in parts/min) and `<kind>_end` (value: how long it lasted).
An episode starts only while the line is in Execute (else that draw is skipped), the three that stop
production never overlap, and a fault due during one waits for its end, so every stop has one cause.
Start-up rejects write one `startup_rejects` row (value: parts) per recovery Start.

This module holds the config and the scheduler (`VariabilityEngine`: which action is due, and the
ground-truth rows); the injectors are `faults.py` (breakdowns), `periodic.py` (quality error, feed
rate) and `losses.py` (episodes, start-up rejects), sharing `injection.py`.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
from pydantic import Field

from . import faults, periodic
from .distributions import BaseDistribution
from .faults import FaultCycle, FaultsConfig
from .injection import Injection, Section, utc
from .losses import (
    EPISODES,
    Episode,
    EpisodeConfig,
    ReducedSpeedConfig,
    StartupRejectsConfig,
    inject_startup_rejects,
    step_episode,
)
from .periodic import FeedRateConfig, PeriodicSignal, QualityErrorConfig
from .plc_port import PlcPort

log = logging.getLogger(__name__)

#: Signals with their own random stream; their names key the SeedSequence spawn.
SIGNALS = (
    "time_to_failure",
    "repair_time",
    "fault_code",
    "quality_error",
    "feed_rate",
    *(
        f"{kind}_{part}"
        for kind in ("starvation", "blocking", "micro_stop", "reduced_speed")
        for part in ("interval", "duration")
    ),
    "reduced_speed_limit",
    "startup_rejects",
)


class LineVariability(Section):
    """What is injected into one line; a missing or disabled section injects nothing."""

    faults: FaultsConfig | None = None
    quality_error: QualityErrorConfig | None = None
    feed_rate: FeedRateConfig | None = None
    starvation: EpisodeConfig | None = None
    blocking: EpisodeConfig | None = None
    micro_stops: EpisodeConfig | None = None
    reduced_speed: ReducedSpeedConfig | None = None
    startup_rejects: StartupRejectsConfig | None = None


class VariabilityConfig(Section):
    """`[variability]` of the collector config, without `enabled` and `seed` (the caller takes those)."""

    default: LineVariability = Field(default_factory=LineVariability)
    lines: dict[str, LineVariability] = Field(default_factory=dict)
    state_poll_s: float = Field(1.0, gt=0, description="simulated seconds between state reads while waiting on the PLC")

    def for_line(self, line: str) -> LineVariability:
        """The line's sections where it sets them, the default's otherwise (section by section)."""
        own = self.lines.get(line)
        if own is None:
            return self.default
        return LineVariability(
            **{
                name: getattr(own if name in own.model_fields_set else self.default, name)
                for name in LineVariability.model_fields
            }
        )


def signal_rng(seed: int, line: str, signal: str) -> np.random.Generator:
    """The generator of one (line, signal): independent of every other line and signal."""
    key = (zlib.crc32(line.encode()), zlib.crc32(signal.encode()))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@dataclass
class _Line:
    """What is injected into one line, with its state."""

    faults: FaultCycle | None = None
    periodic: list[PeriodicSignal] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    startup: StartupRejectsConfig | None = None
    rng_startup: np.random.Generator | None = None

    def stopping_episode(self) -> Episode | None:
        """The episode holding the line stopped now, if any."""
        return next((e for e in self.episodes if e.active and e.stops_line), None)


class VariabilityEngine:
    """Drives the configured injections for `lines`; one `injected_events` row per injection to `sink`."""

    def __init__(
        self,
        config: VariabilityConfig,
        lines: Sequence[str],
        seed: int,
        port: PlcPort,
        sink: Callable[[dict[str, Any]], None],
        session_id: str,
    ) -> None:
        lines = list(lines)
        if not lines:
            raise ValueError("the variability engine needs at least one line")
        if len(set(lines)) != len(lines):
            raise ValueError(f"duplicate line ids in {lines}")
        unknown = sorted(set(config.lines) - set(lines))
        if unknown:
            raise ValueError(f"variability.lines has {unknown}, which are not among the collected lines {lines}")
        if not 0 <= seed < 2**63:
            raise ValueError(f"variability seed must be in 0..2^63-1 (it is stored as int64), got {seed}")
        self.config = config
        self.lines = lines
        self.seed = seed
        self.port = port
        self.sink = sink
        self.session_id = session_id
        self.injections = 0
        self.started_at: datetime | None = None
        self._seq: dict[str, int] = {line: 0 for line in lines}
        self._state: dict[str, _Line] = {}
        self._poll = timedelta(seconds=config.state_poll_s)
        self._ctx: Injection | None = None

    @property
    def abandoned_faults(self) -> int:
        """Faults due while the line could not fail (no injection, no row; see faults.py)."""
        return self._ctx.abandoned_faults if self._ctx is not None else 0

    # ------------------------------------------------------------------ driving
    async def start(self, now: datetime) -> None:
        """First draws and initial writes at simulated time `now` (then everything due at `now`)."""
        if self.started_at is not None:
            raise RuntimeError("VariabilityEngine.start() was already called; drive it with on_clock()")
        now = utc(now)
        self.started_at = now
        self._ctx = Injection(self.port, self._emit, self._poll, now)
        for line in self.lines:
            cfg = self.config.for_line(line)
            st = _Line()
            if cfg.faults is not None and cfg.faults.enabled:
                st.faults = FaultCycle(
                    line,
                    cfg.faults,
                    signal_rng(self.seed, line, "time_to_failure"),
                    signal_rng(self.seed, line, "repair_time"),
                    signal_rng(self.seed, line, "fault_code"),
                    due=now,
                )
            if cfg.quality_error is not None and cfg.quality_error.enabled:
                st.periodic.append(
                    PeriodicSignal(
                        line,
                        "quality_error",
                        "quality_shift",
                        "Sim.QualityErrorMm",
                        "mm",
                        cfg.quality_error,
                        signal_rng(self.seed, line, "quality_error"),
                        now,
                    )
                )
            if cfg.feed_rate is not None and cfg.feed_rate.enabled:
                st.periodic.append(
                    PeriodicSignal(
                        line,
                        "feed_rate",
                        "feed_rate",
                        "Sim.FeedRate",
                        "parts/min",
                        cfg.feed_rate,
                        signal_rng(self.seed, line, "feed_rate"),
                        now,
                    )
                )
            for name, kind, path, stops in EPISODES:
                ecfg: EpisodeConfig | None = getattr(cfg, name)
                if ecfg is None or not ecfg.enabled:
                    continue
                assert ecfg.interval is not None  # noqa: S101 - an invariant, stated for the type checker
                ep = Episode(
                    line,
                    kind,
                    path,
                    ecfg,
                    signal_rng(self.seed, line, f"{kind}_interval"),
                    signal_rng(self.seed, line, f"{kind}_duration"),
                    now,
                    stops,
                    signal_rng(self.seed, line, "reduced_speed_limit") if kind == "reduced_speed" else None,
                )
                ep.due = now + timedelta(seconds=ecfg.interval.sample(ep.rng_interval))
                # an episode a previous session left running (the collector stopped mid-way) ends now; no row
                await self.port.write(line, path, 0.0 if kind == "reduced_speed" else False)
                st.episodes.append(ep)
            if cfg.startup_rejects is not None and cfg.startup_rejects.enabled:
                st.startup, st.rng_startup = cfg.startup_rejects, signal_rng(self.seed, line, "startup_rejects")
            self._state[line] = st
        await self.on_clock(now)

    async def on_clock(self, now: datetime) -> None:
        """Perform every action due at or before `now`, earliest first (ties: line order, then faults,
        quality, feed rate, episodes). Safe to call again after an exception: nothing done is redone."""
        ctx = self._ctx
        if self.started_at is None or ctx is None:
            raise RuntimeError("call VariabilityEngine.start(now) before on_clock()")
        now = utc(now)
        while True:
            best: tuple[datetime, int] | None = None
            action: FaultCycle | PeriodicSignal | Episode | None = None
            for order, proc in enumerate(self._processes()):
                if proc.due <= now and (best is None or (proc.due, order) < best):
                    best, action = (proc.due, order), proc
            if action is None:
                return
            st = self._state[action.line]
            if isinstance(action, PeriodicSignal):
                await periodic.inject(action, now, ctx)
            elif isinstance(action, Episode):
                await step_episode(action, now, ctx, st.stopping_episode())
            else:
                startup = partial(inject_startup_rejects, action.line, st.startup, st.rng_startup, ctx=ctx)
                await faults.step(action, now, ctx, st.stopping_episode(), startup)

    def next_due(self) -> datetime | None:
        """Earliest time an action (or a state poll) is due; None before start or with nothing configured."""
        return min((p.due for p in self._processes()), default=None)

    def _processes(self) -> list[FaultCycle | PeriodicSignal | Episode]:
        procs: list[FaultCycle | PeriodicSignal | Episode] = []
        for line in self.lines:
            st = self._state.get(line)
            if st is None:
                continue
            if st.faults is not None:
                procs.append(st.faults)
            procs.extend(st.periodic)
            procs.extend(st.episodes)
        return procs

    # ------------------------------------------------------------------ ground truth
    def _emit(
        self,
        line: str,
        kind: str,
        dist: BaseDistribution,
        value: float,
        now: datetime,
        fault_code: int | None,
        unit: str,
        context: dict[str, Any],
    ) -> None:
        self._seq[line] += 1
        params = {**dist.describe(), "unit": unit, "context": context}
        self.sink(
            {
                "line_id": line,
                "event_ts": now,
                "kind": kind,
                "distribution": dist.kind,
                "params": json.dumps(params, separators=(",", ":")),
                "value": float(value),
                "fault_code": fault_code,
                "seed": self.seed,
                "session_id": self.session_id,
                "seq": self._seq[line],
                "day": now.strftime("%Y-%m-%d"),
            }
        )
        self.injections += 1
