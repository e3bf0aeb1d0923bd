"""The production line model: infeed -> machining -> quality inspection -> outfeed, behind a
PackML state machine.

Event-driven: `advance(t)` jumps from event to event (part done, acting state complete, starve
timeout, accumulator publish) instead of ticking, so a line costs the same whether it runs at 1x
or 10,000x, and the trajectory depends only on the seed and on when inputs arrive, never on how
time was chunked. Times are simulated epoch seconds (float).

Inputs arrive like a PLC's input image: `apply_input()` is called at a scan, in arrival order.
Outputs leave through `emit(path, value, t)`, one call per value change, in order.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .packml import DEFAULT_ACTING_DURATIONS_S, STATE_COMPLETE, next_state
from .tagmap import PackMLCommand as Cmd
from .tagmap import PackMLState as S
from .tagmap import StopReason as Reason

UINT32 = 1 << 32
INF = math.inf

Emit = Callable[[str, Any, float], None]


@dataclass(frozen=True)
class LineParams:
    """Physical and behavioural parameters of one line (from `plc/lines.toml` or a config file)."""

    line_id: str
    design_speed_ppm: float = 100.0
    feed_rate_ppm: float | None = None  # None: 95 % of design speed
    tolerance_mm: float = 0.05
    gauge_sigma_mm: float = 0.005
    starve_timeout_s: float = 5.0
    accumulator_period_s: float = 1.0
    acting_durations_s: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTING_DURATIONS_S))
    initial_processed_count: int = 0
    initial_defective_count: int = 0
    autostart: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not self.line_id.isidentifier():
            problems.append(f"line id {self.line_id!r} must be an identifier (it becomes a CODESYS GVL name)")
        if not (math.isfinite(self.design_speed_ppm) and self.design_speed_ppm > 0):
            problems.append(f"design_speed_ppm must be > 0, got {self.design_speed_ppm}")
        if self.feed_rate_ppm is not None and not (math.isfinite(self.feed_rate_ppm) and self.feed_rate_ppm >= 0):
            problems.append(f"feed_rate_ppm must be >= 0, got {self.feed_rate_ppm}")
        for name in ("tolerance_mm", "starve_timeout_s", "accumulator_period_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be > 0, got {value}")
        if not (math.isfinite(self.gauge_sigma_mm) and self.gauge_sigma_mm >= 0):
            problems.append(f"gauge_sigma_mm must be >= 0, got {self.gauge_sigma_mm}")
        unknown = set(self.acting_durations_s) - set(DEFAULT_ACTING_DURATIONS_S)
        if unknown:
            problems.append(
                f"acting_durations_s: unknown state(s) {sorted(unknown)}; known: {sorted(DEFAULT_ACTING_DURATIONS_S)}"
            )
        if any(not (math.isfinite(v) and v >= 0) for v in self.acting_durations_s.values()):
            problems.append("acting_durations_s values must be >= 0 seconds")
        for name in ("initial_processed_count", "initial_defective_count"):
            if not 0 <= getattr(self, name) < UINT32:
                problems.append(f"{name} must be in 0..2^32-1")
        if problems:
            raise ValueError(f"line {self.line_id}: " + "; ".join(problems))

    @property
    def initial_feed_rate_ppm(self) -> float:
        return self.design_speed_ppm * 0.95 if self.feed_rate_ppm is None else self.feed_rate_ppm

    def acting_duration(self, state: int) -> float:
        name = S(state).name
        return float(self.acting_durations_s.get(name, DEFAULT_ACTING_DURATIONS_S[name]))


def line_seed(seed: int, line_id: str) -> np.random.SeedSequence:
    """Per-line seed: adding or removing a line does not change the others' trajectories."""
    return np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(line_id.encode())])


def validate_input(path: str, value: Any) -> str | None:
    """Why a value written to a writable tag is out of range, or None when it is acceptable.

    Types are checked by the server against the tag map; this checks meaning."""
    if path == "Sim.FeedRate" and not (math.isfinite(value) and 0 <= value <= 1e6):
        return "Sim.FeedRate must be a finite rate in 0..1e6 parts/min"
    if path == "Sim.QualityErrorMm" and not (math.isfinite(value) and abs(value) <= 1e3):
        return "Sim.QualityErrorMm must be finite and within +-1000 mm"
    if path == "Sim.SpeedLimit" and not (math.isfinite(value) and 0 <= value <= 1e6):
        return "Sim.SpeedLimit must be a finite rate in 0..1e6 parts/min (0 = no limit)"
    if path == "Sim.StartupRejects" and not 0 <= value <= 1_000_000:
        return "Sim.StartupRejects must be 0..1000000 parts"
    if path == "Sim.FaultCode" and not 0 <= value <= 999:
        return "Sim.FaultCode must be 0..999 (0 raises UnspecifiedFault 999)"
    if path == "Command.CntrlCmd" and value not in Cmd._value2member_map_:
        return f"Command.CntrlCmd must be one of {sorted(Cmd._value2member_map_)}"
    return None


class Line:
    """One line's PackML state machine and material flow, advanced in simulated time."""

    _NOISE_BLOCK = 4096

    def __init__(self, params: LineParams, seed: int, t0: float, emit: Emit) -> None:
        self.p = params
        self.emit = emit
        self._rng = np.random.Generator(np.random.PCG64(line_seed(seed, params.line_id)))
        self._noise = self._rng.standard_normal(self._NOISE_BLOCK)
        self._noise_i = 0
        self.t0 = t0
        self.now = t0
        # PackML
        self.state: int = S.Stopped
        self.entered = t0
        self.deadline = INF
        self.acc: dict[int, float] = {int(s): 0.0 for s in S}
        self.stop_reason = 0
        self.suspend_cause: int | None = None  # Reason.Starved / Reason.Blocked when auto-suspended
        self._autostart = params.autostart
        # commands and simulation inputs
        self.cntrl_cmd = 0
        self.batch_quantity = 0
        self.batch_count = 0
        self.fault_code = 0
        self.feed_ppm = params.initial_feed_rate_ppm
        self.quality_error_mm = 0.0
        self.blocked = False
        self.infeed_empty = False  # Sim.InfeedEmpty: upstream starved, whatever the feed rate
        self.micro_stop = False  # Sim.MicroStop: jammed in Execute, speed 0
        self.speed_limit_ppm = 0.0  # Sim.SpeedLimit: 0 = none
        self.startup_rejects = 0  # Sim.StartupRejects: taken at the next Starting -> Execute
        self.startup_left = 0  # start-up rejects still to make
        # material flow: progress of the part in the machine, as of progress_t
        self.progress = 0.0
        self.progress_t = t0
        self.rate_pps = 0.0
        self.next_part = INF
        self.starve_at = INF
        self.next_acc = self._next_grid(t0)
        self.processed = params.initial_processed_count
        self.defective = params.initial_defective_count
        self.cur_speed = 0.0
        self._publish_initial()
        if self._autostart:
            self._command(Cmd.Reset)

    # ---------------------------------------------------------------- outputs
    def _publish_initial(self) -> None:
        t, e = self.now, self.emit
        e("Status.StateCurrent", int(self.state), t)
        e("Status.CurMachSpeed", 0.0, t)
        e("Status.CmdRejected", False, t)
        e("Admin.MachDesignSpeed", float(self.p.design_speed_ppm), t)
        e("Admin.ProdProcessedCount", self.processed, t)
        e("Admin.ProdDefectiveCount", self.defective, t)
        e("Admin.StopReason.ID", 0, t)
        e("Admin.AccTimeSinceReset", 0.0, t)
        for s in S:
            e(f"Admin.StateTime.{s.name}", 0.0, t)
        e("Quality.ToleranceMm", float(self.p.tolerance_mm), t)
        e("Sim.FeedRate", float(self.feed_ppm), t)

    def state_time(self, state: int) -> float:
        """Seconds spent in `state` since PLC start, as of `now`."""
        extra = self.now - self.entered if state == self.state else 0.0
        return self.acc[int(state)] + extra

    def _next_grid(self, t: float) -> float:
        period = self.p.accumulator_period_s
        return (math.floor(t / period) + 1) * period

    # ---------------------------------------------------------------- inputs
    def apply_input(self, path: str, value: Any) -> None:
        """Apply a client write at the current simulated time (a PLC scan reading its inputs)."""
        if path == "Command.CntrlCmd":
            self.cntrl_cmd = int(value)
        elif path == "Command.CmdChangeRequest":
            if value:
                self._command(self.cntrl_cmd, from_client=True)
                self.emit("Command.CmdChangeRequest", False, self.now)
        elif path == "Command.BatchQuantity":
            self.batch_quantity = int(value)
            self._check_batch_complete()
        elif path == "Sim.QualityErrorMm":
            self.quality_error_mm = float(value)
        elif path == "Sim.FaultCode":
            self.fault_code = int(value)
        elif path == "Sim.FaultRequest":
            if value:
                self._fault(self.fault_code or int(Reason.UnspecifiedFault))
                self.emit("Sim.FaultRequest", False, self.now)
        elif path == "Sim.FeedRate":
            self.feed_ppm = float(value)
            self._update_flow()
        elif path == "Sim.OutfeedBlocked":
            self.blocked = bool(value)
            self._update_flow()
        elif path == "Sim.InfeedEmpty":
            self.infeed_empty = bool(value)
            self._update_flow()
        elif path == "Sim.MicroStop":
            self.micro_stop = bool(value)
            self._update_flow()
        elif path == "Sim.SpeedLimit":
            self.speed_limit_ppm = float(value)
            self._update_flow()
        elif path == "Sim.StartupRejects":
            self.startup_rejects = int(value)
        else:
            raise KeyError(f"{path} is not an input of the line model")

    def _command(self, cmd: int, from_client: bool = False) -> None:
        target = next_state(self.state, cmd)
        if from_client:
            self.emit("Status.CmdRejected", target is None, self.now)
        if target is None:
            return
        reason = {
            Cmd.Stop: Reason.OperatorStop,
            Cmd.Hold: Reason.OperatorHold,
            Cmd.Suspend: Reason.OperatorSuspend,
            Cmd.Abort: Reason.OperatorAbort,
        }.get(cmd)
        if cmd == Cmd.Start:
            self.batch_count = 0
        self._enter(target, reason)

    def _fault(self, code: int) -> None:
        if self.state in (S.Aborting, S.Aborted):
            return  # already down; the first fault stays the stop reason
        self._enter(S.Aborting, code)

    # ---------------------------------------------------------------- state machine
    def _enter(self, state: int, reason: int | None = None) -> None:
        t = self.now
        old = self.state
        self._sync_progress()
        self.acc[int(old)] += t - self.entered
        self.entered = t
        self.state = state
        if state not in (S.Suspending, S.Suspended):
            self.suspend_cause = None  # only an automatic suspension remembers its cause
        self.emit(f"Admin.StateTime.{S(old).name}", self.acc[int(old)], t)
        self.emit("Status.StateCurrent", int(state), t)
        if reason is not None and int(reason) != self.stop_reason:
            self.stop_reason = int(reason)
            self.emit("Admin.StopReason.ID", self.stop_reason, t)
        self.deadline = t + self.p.acting_duration(state) if state in STATE_COMPLETE else INF
        if old == S.Starting and state == S.Execute and self.startup_rejects > 0:
            self.startup_left, self.startup_rejects = self.startup_rejects, 0
            self.emit("Sim.StartupRejects", 0, t)
        if state == S.Idle and self._autostart:
            self._autostart = False
            self._command(Cmd.Start)
            return
        self._update_flow()

    def _update_flow(self) -> None:
        """Re-derive machine rate, starve timer and automatic suspend/unsuspend from the inputs."""
        t = self.now
        if self.state == S.Execute and self.blocked:
            self.suspend_cause = int(Reason.Blocked)
            self._enter(S.Suspending, Reason.Blocked)
            return
        feed = 0.0 if self.infeed_empty else self.feed_ppm
        if self.state == S.Suspended and self.suspend_cause is not None and not self.blocked and feed > 0:
            self._enter(S.Unsuspending)
            return
        self._sync_progress()
        executing = self.state == S.Execute
        limit = self.speed_limit_ppm if self.speed_limit_ppm > 0 else INF
        rate_ppm = min(feed, self.p.design_speed_ppm, limit) if executing and not self.micro_stop else 0.0
        self.rate_pps = rate_ppm / 60.0
        self.next_part = self.progress_t + (1.0 - self.progress) / self.rate_pps if self.rate_pps > 0 else INF
        if executing and feed <= 0:
            if self.starve_at == INF:
                self.starve_at = t + self.p.starve_timeout_s
        else:
            self.starve_at = INF
        if rate_ppm != self.cur_speed:
            self.cur_speed = rate_ppm
            self.emit("Status.CurMachSpeed", float(rate_ppm), t)

    def _sync_progress(self) -> None:
        self.progress = min(1.0, self.progress + self.rate_pps * (self.now - self.progress_t))
        self.progress_t = self.now

    def _check_batch_complete(self) -> None:
        if self.state == S.Execute and 0 < self.batch_quantity <= self.batch_count:
            self._enter(S.Completing, Reason.BatchComplete)

    # ---------------------------------------------------------------- events
    def _part_done(self) -> None:
        t = self.now
        if self._noise_i == self._NOISE_BLOCK:
            self._noise = self._rng.standard_normal(self._NOISE_BLOCK)
            self._noise_i = 0
        deviation = self.quality_error_mm + self.p.gauge_sigma_mm * float(self._noise[self._noise_i])
        self._noise_i += 1
        self.emit("Quality.LastPartDeviation", deviation, t)
        self.processed = (self.processed + 1) % UINT32
        self.emit("Admin.ProdProcessedCount", self.processed, t)
        startup = self.startup_left > 0  # scrapped by the start-up rule, whatever it measures
        if startup:
            self.startup_left -= 1
        if startup or abs(deviation) > self.p.tolerance_mm:
            self.defective = (self.defective + 1) % UINT32
            self.emit("Admin.ProdDefectiveCount", self.defective, t)
        self.batch_count += 1
        self.progress, self.progress_t = 0.0, t
        self.next_part = t + 1.0 / self.rate_pps
        self._check_batch_complete()

    def _publish_accumulators(self) -> None:
        t = self.now
        self.emit(f"Admin.StateTime.{S(self.state).name}", self.state_time(self.state), t)
        self.emit("Admin.AccTimeSinceReset", t - self.t0, t)
        self.next_acc = self._next_grid(t)

    def advance(self, t_target: float) -> None:
        """Run the line up to simulated time `t_target`, emitting every change on the way."""
        while True:
            # Ties resolve in this fixed order, so the trajectory is deterministic.
            t_next = min(self.deadline, self.next_part, self.starve_at, self.next_acc)
            if t_next > t_target:
                break
            self.now = t_next
            if t_next == self.deadline:
                self.deadline = INF
                self._enter(STATE_COMPLETE[self.state])
            elif t_next == self.next_part:
                self._part_done()
            elif t_next == self.starve_at:
                self.starve_at = INF
                self.suspend_cause = int(Reason.Starved)
                self._enter(S.Suspending, Reason.Starved)
            else:
                self._publish_accumulators()
        if t_target > self.now:
            self.now = t_target
