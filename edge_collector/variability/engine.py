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
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from plc.tagmap import PackMLCommand as Cmd
from plc.tagmap import PackMLState as S
from plc.tagmap import StopReason

from .distributions import BaseDistribution, Categorical, Distribution
from .losses import EPISODES, FEED_RATE_MAX, Episode, EpisodeConfig, ReducedSpeedConfig, StartupRejectsConfig
from .plc_port import LineState, PlcPort

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

#: States a breakdown can hit: the line is producing or paused while producing.
FAULTABLE_STATES = frozenset(
    int(s) for s in (S.Execute, S.Starting, S.Holding, S.Held, S.Unholding, S.Suspending, S.Suspended, S.Unsuspending)
)
#: Recovery: the command that moves a line from this state towards Execute.
RECOVERY_COMMANDS = {int(S.Aborted): int(Cmd.Clear), int(S.Stopped): int(Cmd.Reset), int(S.Idle): int(Cmd.Start)}

QUALITY_ERROR_MAX = 1e3


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FaultsConfig(_Model):
    """Breakdowns: time to failure, repair time and fault code distributions (seconds, code 1..999)."""

    enabled: bool = True
    time_to_failure: Distribution | None = None
    repair_time: Distribution | None = None
    fault_code: Categorical | None = Field(None, description="None: every fault is UnspecifiedFault (999)")

    @model_validator(mode="after")
    def _check(self) -> FaultsConfig:
        if not self.enabled:
            return self
        missing = [n for n in ("time_to_failure", "repair_time") if getattr(self, n) is None]
        if missing:
            raise ValueError(f"faults needs {' and '.join(missing)} (seconds), or enabled = false")
        for name in ("time_to_failure", "repair_time"):
            dist: BaseDistribution = getattr(self, name)
            if dist.support()[0] < 0:
                raise ValueError(
                    f"faults.{name}: a {dist.kind} distribution can draw negative durations; use one of "
                    "non-negative seconds (weibull, exponential, lognormal, gamma, uniform/triangular >= 0)"
                )
        if self.fault_code is not None:
            bad = sorted(c for c in self.fault_code.weights if not 1 <= c <= 999)
            if bad:
                raise ValueError(
                    f"faults.fault_code: codes must be 1..999 (equipment faults in the tag map's "
                    f"stop_reasons), got {bad}"
                )
        return self


class PeriodicConfig(_Model):
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


class LineVariability(_Model):
    """What is injected into one line; a missing or disabled section injects nothing."""

    faults: FaultsConfig | None = None
    quality_error: QualityErrorConfig | None = None
    feed_rate: FeedRateConfig | None = None
    starvation: EpisodeConfig | None = None
    blocking: EpisodeConfig | None = None
    micro_stops: EpisodeConfig | None = None
    reduced_speed: ReducedSpeedConfig | None = None
    startup_rejects: StartupRejectsConfig | None = None


class VariabilityConfig(_Model):
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


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


class _Phase(Enum):
    WAIT_EXECUTE = "wait_execute"  # polling until the line (re-)enters Execute
    ARMED = "armed"  # TTF drawn; due = uptime start + TTF
    FAULTED = "faulted"  # fault written; due = fault time + repair time
    RECOVERING = "recovering"  # Clear / Reset / Start, polling the state


@dataclass
class _Faults:
    line: str
    cfg: FaultsConfig
    rng_ttf: np.random.Generator
    rng_repair: np.random.Generator
    rng_code: np.random.Generator
    due: datetime
    phase: _Phase = _Phase.WAIT_EXECUTE
    used_since: datetime | None = None  # Execute visit a TTF was already counted from
    uptime_start: datetime | None = None
    ttf: float = 0.0
    code: int = 0
    repair: float = 0.0
    scheduled: datetime | None = None  # when the current fault was due
    fault_ts: datetime | None = None
    repair_due: datetime | None = None
    cleared: bool = False
    commanded: tuple[int, datetime | None] | None = None  # (state, since) a command was sent in


@dataclass
class _Periodic:
    line: str
    signal: str
    kind: str
    path: str
    unit: str
    cfg: PeriodicConfig
    rng: np.random.Generator
    due: datetime
    pending: float | None = None  # drawn for `due`, kept until written (a failed write retries the same value)


@dataclass
class _Line:
    faults: _Faults | None = None
    periodic: list[_Periodic] = field(default_factory=list)
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
        self.abandoned_faults = 0
        self.started_at: datetime | None = None
        self._seq: dict[str, int] = {line: 0 for line in lines}
        self._state: dict[str, _Line] = {}
        self._poll = timedelta(seconds=config.state_poll_s)

    # ------------------------------------------------------------------ driving
    async def start(self, now: datetime) -> None:
        """First draws and initial writes at simulated time `now` (then everything due at `now`)."""
        if self.started_at is not None:
            raise RuntimeError("VariabilityEngine.start() was already called; drive it with on_clock()")
        now = _utc(now)
        self.started_at = now
        for line in self.lines:
            cfg = self.config.for_line(line)
            st = _Line()
            if cfg.faults is not None and cfg.faults.enabled:
                st.faults = _Faults(
                    line,
                    cfg.faults,
                    signal_rng(self.seed, line, "time_to_failure"),
                    signal_rng(self.seed, line, "repair_time"),
                    signal_rng(self.seed, line, "fault_code"),
                    due=now,
                )
            if cfg.quality_error is not None and cfg.quality_error.enabled:
                st.periodic.append(
                    _Periodic(
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
                    _Periodic(
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
        if self.started_at is None:
            raise RuntimeError("call VariabilityEngine.start(now) before on_clock()")
        now = _utc(now)
        while True:
            best: tuple[datetime, int] | None = None
            action: _Faults | _Periodic | Episode | None = None
            for order, proc in enumerate(self._processes()):
                if proc.due <= now and (best is None or (proc.due, order) < best):
                    best, action = (proc.due, order), proc
            if action is None:
                return
            if isinstance(action, _Periodic):
                await self._periodic(action, now)
            elif isinstance(action, Episode):
                await self._episode(action, now)
            else:
                await self._faults(action, now)

    def next_due(self) -> datetime | None:
        """Earliest time an action (or a state poll) is due; None before start or with nothing configured."""
        return min((p.due for p in self._processes()), default=None)

    def _processes(self) -> list[_Faults | _Periodic | Episode]:
        procs: list[_Faults | _Periodic | Episode] = []
        for line in self.lines:
            st = self._state.get(line)
            if st is None:
                continue
            if st.faults is not None:
                procs.append(st.faults)
            procs.extend(st.periodic)
            procs.extend(st.episodes)
        return procs

    # ------------------------------------------------------------------ periodic signals
    async def _periodic(self, p: _Periodic, now: datetime) -> None:
        assert p.cfg.distribution is not None and self.started_at is not None  # noqa: S101 - an invariant, stated for the type checker
        hours = (p.due - self.started_at).total_seconds() / 3600.0
        if p.pending is None:
            p.pending = p.cfg.distribution.sample(p.rng, hours=hours)
        value = p.pending
        await self.port.write(p.line, p.path, value)
        context: dict[str, Any] = {"due_ts": _iso(p.due), "interval_s": p.cfg.interval_s}
        if p.cfg.distribution.uses_hours:
            context["hours_since_start"] = hours
        self._emit(p.line, p.kind, p.cfg.distribution, value, now, None, p.unit, context)
        p.pending = None
        p.due = p.due + timedelta(seconds=p.cfg.interval_s)

    # ------------------------------------------------------------------ episodes
    async def _episode(self, e: Episode, now: datetime) -> None:
        """Start an episode (only in Execute, one stopping episode at a time) or end the running one."""
        assert e.cfg.interval is not None and e.cfg.duration is not None  # noqa: S101 - an invariant, stated for the type checker
        if not e.active:
            scheduled = e.due
            busy = e.stops_line and self._state[e.line].stopping_episode() is not None
            st = await self.port.state(e.line)
            if st.state != S.Execute or busy:
                e.due = now + timedelta(seconds=e.cfg.interval.sample(e.rng_interval))
                return
            e.duration = e.cfg.duration.sample(e.rng_duration)
            context: dict[str, Any] = {"due_ts": _iso(scheduled), "duration_s": e.duration, "tag": e.path}
            if e.rng_value is not None:
                cfg = e.cfg
                assert isinstance(cfg, ReducedSpeedConfig) and cfg.speed_limit is not None  # noqa: S101 - an invariant, stated for the type checker
                e.value = cfg.speed_limit.sample(e.rng_value)
                await self.port.write(e.line, e.path, e.value)
                self._emit(e.line, f"{e.kind}_start", cfg.speed_limit, e.value, now, None, "parts/min", context)
            else:
                await self.port.write(e.line, e.path, True)
                self._emit(e.line, f"{e.kind}_start", e.cfg.duration, e.duration, now, None, "s", context)
            e.active, e.started = True, now
            e.due = now + timedelta(seconds=e.duration)
            return
        await self.port.write(e.line, e.path, 0.0 if e.rng_value is not None else False)
        assert e.started is not None  # noqa: S101 - an invariant, stated for the type checker
        lasted = (now - e.started).total_seconds()
        context = {"start_ts": _iso(e.started), "drawn_duration_s": e.duration, "tag": e.path}
        self._emit(e.line, f"{e.kind}_end", e.cfg.duration, lasted, now, None, "s", context)
        e.active = False
        e.due = now + timedelta(seconds=e.cfg.interval.sample(e.rng_interval))

    async def _startup_rejects(self, line: str, now: datetime) -> None:
        """Before the Start of a recovery: the parts the restart will scrap."""
        st = self._state[line]
        if st.startup is None or st.rng_startup is None:
            return
        assert st.startup.count is not None  # noqa: S101 - an invariant, stated for the type checker
        n = max(0, round(st.startup.count.sample(st.rng_startup)))
        if n == 0:
            return
        await self.port.write(line, "Sim.StartupRejects", n)
        self._emit(line, "startup_rejects", st.startup.count, n, now, None, "parts", {"tag": "Sim.StartupRejects"})

    # ------------------------------------------------------------------ faults
    async def _faults(self, f: _Faults, now: datetime) -> None:
        if f.phase is _Phase.WAIT_EXECUTE:
            self._arm_or_wait(f, await self.port.state(f.line), now)
        elif f.phase is _Phase.ARMED:
            await self._inject(f, now)
        else:
            f.phase = _Phase.RECOVERING
            await self._recover(f, now)

    def _arm_or_wait(self, f: _Faults, st: LineState, now: datetime) -> None:
        since = _utc(st.since) if st.since is not None else now
        if st.state != S.Execute or (f.used_since is not None and since <= f.used_since):
            f.due = now + self._poll
            return
        assert self.started_at is not None  # noqa: S101 - an invariant, stated for the type checker
        f.used_since = since
        f.uptime_start = since if f.fault_ts is not None else max(since, self.started_at)
        assert f.cfg.time_to_failure is not None and f.cfg.repair_time is not None  # noqa: S101 - an invariant, stated for the type checker
        f.ttf = f.cfg.time_to_failure.sample(f.rng_ttf)
        f.code = (
            f.cfg.fault_code.sample(f.rng_code) if f.cfg.fault_code is not None else int(StopReason.UnspecifiedFault)
        )
        f.repair = f.cfg.repair_time.sample(f.rng_repair)
        f.phase = _Phase.ARMED
        f.due = f.uptime_start + timedelta(seconds=f.ttf)
        f.scheduled = f.due

    async def _inject(self, f: _Faults, now: datetime) -> None:
        holding = self._state[f.line].stopping_episode()
        if holding is not None:  # one cause per stop: the fault waits for the episode's end
            f.due = holding.due + self._poll
            return
        st = await self.port.state(f.line)
        if st.state not in FAULTABLE_STATES:
            self.abandoned_faults += 1
            log.info(
                "fault of %s due at %s abandoned: the line is in state %s; a new time to failure starts at "
                "its next Execute",
                f.line,
                f.scheduled,
                st.state,
                extra={"line_id": f.line},
            )
            f.phase, f.due = _Phase.WAIT_EXECUTE, now + self._poll
            return
        await self.port.write(f.line, "Sim.FaultCode", f.code)
        await self.port.write(f.line, "Sim.FaultRequest", True)
        assert f.cfg.time_to_failure is not None  # noqa: S101 - an invariant, stated for the type checker
        context: dict[str, Any] = {
            "uptime_start_ts": _iso(f.uptime_start),
            "due_ts": _iso(f.scheduled),
            "state_before": st.state,
            "fault_code_distribution": f.cfg.fault_code.describe() if f.cfg.fault_code is not None else None,
        }
        self._emit(f.line, "fault_start", f.cfg.time_to_failure, f.ttf, now, f.code, "s", context)
        f.fault_ts = now
        f.repair_due = now + timedelta(seconds=f.repair)
        f.phase, f.due = _Phase.FAULTED, f.repair_due
        f.cleared, f.commanded = False, None

    async def _recover(self, f: _Faults, now: datetime) -> None:
        st = await self.port.state(f.line)
        since = _utc(st.since) if st.since is not None else None
        if not f.cleared:
            if st.state == S.Aborted:
                await self.port.command(f.line, Cmd.Clear)
                f.commanded = (st.state, since)
                self._fault_end(f, now, "engine")
                f.due = now + self._poll
                return
            left_abort = st.state != S.Aborting and since is not None and f.fault_ts is not None and since > f.fault_ts
            if not left_abort:  # the fault is not applied yet, or the line is still aborting
                f.due = now + self._poll
                return
            # An operator cleared it first: the fault ends now (the row says which state was seen since
            # when), and the engine finishes the restart.
            self._fault_end(f, now, "external", {"seen_state": st.state, "seen_state_since_ts": _iso(since)})
        if st.state == S.Execute:
            f.phase = _Phase.WAIT_EXECUTE
            self._arm_or_wait(f, st, now)
            return
        cmd = RECOVERY_COMMANDS.get(st.state)
        if cmd is not None and f.commanded != (st.state, since):
            if cmd == Cmd.Start:
                await self._startup_rejects(f.line, now)
            await self.port.command(f.line, cmd)
            f.commanded = (st.state, since)
        f.due = now + self._poll

    def _fault_end(self, f: _Faults, now: datetime, cleared_by: str, extra: dict[str, Any] | None = None) -> None:
        assert f.cfg.repair_time is not None  # noqa: S101 - an invariant, stated for the type checker
        context = {
            "fault_start_ts": _iso(f.fault_ts),
            "repair_due_ts": _iso(f.repair_due),
            "time_to_failure_s": f.ttf,
            "cleared_by": cleared_by,
            **(extra or {}),
        }
        self._emit(f.line, "fault_end", f.cfg.repair_time, f.repair, now, f.code, "s", context)
        f.cleared = True

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
