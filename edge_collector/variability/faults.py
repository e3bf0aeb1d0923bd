"""Breakdowns: the variability engine's fault cycle of one line (time to failure, fault, repair,
recovery through Clear / Reset / Start), and its `[faults]` section. `engine.py` documents the
rules and schedules the cycle; `step` performs whatever is due."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from plc.tagmap import PackMLCommand as Cmd
from plc.tagmap import PackMLState as S
from plc.tagmap import StopReason

from .distributions import BaseDistribution, Categorical, Distribution
from .injection import Injection, Section, iso, utc
from .losses import Episode
from .plc_port import LineState

log = logging.getLogger("edge_collector.variability.engine")

#: States a breakdown can hit: the line is producing or paused while producing.
FAULTABLE_STATES = frozenset(
    int(s) for s in (S.Execute, S.Starting, S.Holding, S.Held, S.Unholding, S.Suspending, S.Suspended, S.Unsuspending)
)
#: Recovery: the command that moves a line from this state towards Execute.
RECOVERY_COMMANDS = {int(S.Aborted): int(Cmd.Clear), int(S.Stopped): int(Cmd.Reset), int(S.Idle): int(Cmd.Start)}


class FaultsConfig(Section):
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


class Phase(Enum):
    WAIT_EXECUTE = "wait_execute"  # polling until the line (re-)enters Execute
    ARMED = "armed"  # TTF drawn; due = uptime start + TTF
    FAULTED = "faulted"  # fault written; due = fault time + repair time
    RECOVERING = "recovering"  # Clear / Reset / Start, polling the state


@dataclass
class FaultCycle:
    """One line's breakdown cycle: arm a time to failure, fault, repair, recover (see engine.py)."""

    line: str
    cfg: FaultsConfig
    rng_ttf: np.random.Generator
    rng_repair: np.random.Generator
    rng_code: np.random.Generator
    due: datetime
    phase: Phase = Phase.WAIT_EXECUTE
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


async def step(
    f: FaultCycle,
    now: datetime,
    ctx: Injection,
    stopping: Episode | None,
    startup_rejects: Callable[[datetime], Awaitable[None]],
) -> None:
    """The fault cycle's action due now; `stopping` is the episode holding the line stopped, if any,
    `startup_rejects` the start-up rejects injector called before a recovery's Start."""
    if f.phase is Phase.WAIT_EXECUTE:
        _arm_or_wait(f, await ctx.port.state(f.line), now, ctx)
    elif f.phase is Phase.ARMED:
        await _inject(f, now, ctx, stopping)
    else:
        f.phase = Phase.RECOVERING
        await _recover(f, now, ctx, startup_rejects)


def _arm_or_wait(f: FaultCycle, st: LineState, now: datetime, ctx: Injection) -> None:
    since = utc(st.since) if st.since is not None else now
    if st.state != S.Execute or (f.used_since is not None and since <= f.used_since):
        f.due = now + ctx.poll
        return
    f.used_since = since
    f.uptime_start = since if f.fault_ts is not None else max(since, ctx.started_at)
    assert f.cfg.time_to_failure is not None and f.cfg.repair_time is not None  # noqa: S101 - an invariant, stated for the type checker
    f.ttf = f.cfg.time_to_failure.sample(f.rng_ttf)
    f.code = f.cfg.fault_code.sample(f.rng_code) if f.cfg.fault_code is not None else int(StopReason.UnspecifiedFault)
    f.repair = f.cfg.repair_time.sample(f.rng_repair)
    f.phase = Phase.ARMED
    f.due = f.uptime_start + timedelta(seconds=f.ttf)
    f.scheduled = f.due


async def _inject(f: FaultCycle, now: datetime, ctx: Injection, stopping: Episode | None) -> None:
    holding = stopping
    if holding is not None:  # one cause per stop: the fault waits for the episode's end
        f.due = holding.due + ctx.poll
        return
    st = await ctx.port.state(f.line)
    if st.state not in FAULTABLE_STATES:
        ctx.abandoned_faults += 1
        log.info(
            "fault of %s due at %s abandoned: the line is in state %s; a new time to failure starts at "
            "its next Execute",
            f.line,
            f.scheduled,
            st.state,
            extra={"line_id": f.line},
        )
        f.phase, f.due = Phase.WAIT_EXECUTE, now + ctx.poll
        return
    await ctx.port.write(f.line, "Sim.FaultCode", f.code)
    await ctx.port.write(f.line, "Sim.FaultRequest", True)
    assert f.cfg.time_to_failure is not None  # noqa: S101 - an invariant, stated for the type checker
    context: dict[str, Any] = {
        "uptime_start_ts": iso(f.uptime_start),
        "due_ts": iso(f.scheduled),
        "state_before": st.state,
        "fault_code_distribution": f.cfg.fault_code.describe() if f.cfg.fault_code is not None else None,
    }
    ctx.emit(f.line, "fault_start", f.cfg.time_to_failure, f.ttf, now, f.code, "s", context)
    f.fault_ts = now
    f.repair_due = now + timedelta(seconds=f.repair)
    f.phase, f.due = Phase.FAULTED, f.repair_due
    f.cleared, f.commanded = False, None


async def _recover(
    f: FaultCycle, now: datetime, ctx: Injection, startup_rejects: Callable[[datetime], Awaitable[None]]
) -> None:
    st = await ctx.port.state(f.line)
    since = utc(st.since) if st.since is not None else None
    if not f.cleared:
        if st.state == S.Aborted:
            await ctx.port.command(f.line, Cmd.Clear)
            f.commanded = (st.state, since)
            _fault_end(f, now, ctx, "engine")
            f.due = now + ctx.poll
            return
        left_abort = st.state != S.Aborting and since is not None and f.fault_ts is not None and since > f.fault_ts
        if not left_abort:  # the fault is not applied yet, or the line is still aborting
            f.due = now + ctx.poll
            return
        # An operator cleared it first: the fault ends now (the row says which state was seen since
        # when), and the engine finishes the restart.
        _fault_end(f, now, ctx, "external", {"seen_state": st.state, "seen_state_since_ts": iso(since)})
    if st.state == S.Execute:
        f.phase = Phase.WAIT_EXECUTE
        _arm_or_wait(f, st, now, ctx)
        return
    cmd = RECOVERY_COMMANDS.get(st.state)
    if cmd is not None and f.commanded != (st.state, since):
        if cmd == Cmd.Start:
            await startup_rejects(now)
        await ctx.port.command(f.line, cmd)
        f.commanded = (st.state, since)
    f.due = now + ctx.poll


def _fault_end(
    f: FaultCycle, now: datetime, ctx: Injection, cleared_by: str, extra: dict[str, Any] | None = None
) -> None:
    assert f.cfg.repair_time is not None  # noqa: S101 - an invariant, stated for the type checker
    context = {
        "fault_start_ts": iso(f.fault_ts),
        "repair_due_ts": iso(f.repair_due),
        "time_to_failure_s": f.ttf,
        "cleared_by": cleared_by,
        **(extra or {}),
    }
    ctx.emit(f.line, "fault_end", f.cfg.repair_time, f.repair, now, f.code, "s", context)
    f.cleared = True
