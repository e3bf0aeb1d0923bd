"""The line model on its own: PackML transitions, material flow, counters, quality, determinism."""

from __future__ import annotations

from typing import Any

import pytest

from plc.line_model import UINT32, Line, LineParams
from plc.packml import COMMAND_TRANSITIONS
from plc.tagmap import PackMLCommand as Cmd
from plc.tagmap import PackMLState as S
from plc.tagmap import StopReason

T0 = 1_795_000_000.0
# autostart: Resetting (4 s) then Starting (5 s)
EXECUTE_AT = T0 + 9.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, float]] = []

    def __call__(self, path: str, value: Any, t: float) -> None:
        self.events.append((path, value, t))

    def values(self, path: str) -> list[tuple[Any, float]]:
        return [(v, t) for p, v, t in self.events if p == path]

    def states(self) -> list[int]:
        return [v for v, _ in self.values("Status.StateCurrent")]


def make(**kw: Any) -> tuple[Line, Recorder]:
    rec = Recorder()
    seed = kw.pop("seed", 3)
    params = LineParams(line_id=kw.pop("line_id", "L1"), **{"design_speed_ppm": 120.0, **kw})
    return Line(params, seed=seed, t0=T0, emit=rec), rec


def command(line: Line, cmd: int) -> None:
    line.apply_input("Command.CntrlCmd", int(cmd))
    line.apply_input("Command.CmdChangeRequest", True)


def test_autostart_walks_stopped_resetting_idle_starting_execute() -> None:
    line, rec = make()
    line.advance(T0 + 20)
    assert rec.states()[:5] == [S.Stopped, S.Resetting, S.Idle, S.Starting, S.Execute]
    assert [t for v, t in rec.values("Status.StateCurrent") if v == S.Execute] == [EXECUTE_AT]


def test_without_autostart_the_line_waits_in_stopped_for_commands() -> None:
    line, _rec = make(autostart=False)
    line.advance(T0 + 100)
    assert line.state == S.Stopped and line.processed == 0
    command(line, Cmd.Reset)
    line.advance(T0 + 104)
    assert line.state == S.Idle
    command(line, Cmd.Start)
    line.advance(T0 + 109)
    assert line.state == S.Execute


@pytest.mark.parametrize(
    ("cmd", "acting", "final"),
    [
        (Cmd.Hold, S.Holding, S.Held),
        (Cmd.Suspend, S.Suspending, S.Suspended),
        (Cmd.Stop, S.Stopping, S.Stopped),
        (Cmd.Abort, S.Aborting, S.Aborted),
    ],
)
def test_commands_from_execute(cmd: int, acting: int, final: int) -> None:
    line, rec = make()
    line.advance(EXECUTE_AT + 10)
    command(line, cmd)
    assert line.state == acting
    line.advance(EXECUTE_AT + 20)
    assert line.state == final
    assert rec.values("Command.CmdChangeRequest")[-1][0] is False  # the PLC took the command
    assert rec.values("Status.CmdRejected")[-1][0] is False


def test_hold_unhold_and_suspend_unsuspend_return_to_execute() -> None:
    line, rec = make()
    line.advance(EXECUTE_AT + 1)
    for there, back in ((Cmd.Hold, Cmd.Unhold), (Cmd.Suspend, Cmd.Unsuspend)):
        command(line, there)
        line.advance(line.now + 5)
        command(line, back)
        line.advance(line.now + 5)
        assert line.state == S.Execute
    assert rec.states()[-8:] == [
        S.Holding,
        S.Held,
        S.Unholding,
        S.Execute,
        S.Suspending,
        S.Suspended,
        S.Unsuspending,
        S.Execute,
    ]


def test_illegal_commands_are_refused_and_flagged() -> None:
    line, rec = make()
    line.advance(EXECUTE_AT + 1)
    before = len(rec.states())
    for cmd in (Cmd.Start, Cmd.Reset, Cmd.Unhold, Cmd.Clear, Cmd.Unsuspend, Cmd.Undefined):
        command(line, cmd)
        assert line.state == S.Execute
        assert rec.values("Status.CmdRejected")[-1][0] is True
    assert len(rec.states()) == before
    command(line, Cmd.Hold)  # a legal one clears the flag
    assert rec.values("Status.CmdRejected")[-1][0] is False


def test_every_state_command_pair_follows_the_table() -> None:
    """Drive the model into each state and try every command: it must do what the table says."""
    reach = {  # command sequence (with waits) that parks the line in each stable state
        S.Stopped: [Cmd.Stop],
        S.Idle: [Cmd.Stop, Cmd.Reset],
        S.Execute: [],
        S.Held: [Cmd.Hold],
        S.Suspended: [Cmd.Suspend],
        S.Aborted: [Cmd.Abort],
    }
    for state, seq in reach.items():
        for cmd in Cmd:
            line, _ = make()
            line.advance(EXECUTE_AT + 1)
            for c in seq:
                command(line, c)
                line.advance(line.now + 10)
            assert line.state == state
            command(line, cmd)
            expected = COMMAND_TRANSITIONS.get((state, cmd), state)
            assert line.state == expected, (S(state).name, Cmd(cmd).name)


def test_fault_aborts_and_clear_reset_start_returns_to_execute() -> None:
    line, rec = make()
    line.advance(EXECUTE_AT + 30)
    line.apply_input("Sim.FaultCode", 42)
    line.apply_input("Sim.FaultRequest", True)
    assert line.state == S.Aborting
    assert rec.values("Admin.StopReason.ID")[-1] == (42, EXECUTE_AT + 30)
    assert rec.values("Sim.FaultRequest")[-1][0] is False  # latched and acknowledged
    line.advance(EXECUTE_AT + 35)
    assert line.state == S.Aborted
    parts = line.processed
    line.advance(EXECUTE_AT + 300)
    assert line.processed == parts  # nothing is made while aborted
    for cmd in (Cmd.Clear, Cmd.Reset, Cmd.Start):
        command(line, cmd)
        line.advance(line.now + 10)
    assert line.state == S.Execute
    assert rec.states()[-8:] == [
        S.Aborting,
        S.Aborted,
        S.Clearing,
        S.Stopped,
        S.Resetting,
        S.Idle,
        S.Starting,
        S.Execute,
    ]


def test_fault_without_code_is_unspecified_and_second_fault_keeps_first_reason() -> None:
    line, _rec = make()
    line.advance(EXECUTE_AT + 1)
    line.apply_input("Sim.FaultRequest", True)
    assert line.stop_reason == StopReason.UnspecifiedFault
    line.apply_input("Sim.FaultCode", 7)
    line.apply_input("Sim.FaultRequest", True)
    assert line.stop_reason == StopReason.UnspecifiedFault


def test_parts_follow_the_slower_of_feed_and_design_speed() -> None:
    line, rec = make(feed_rate_ppm=60.0)  # 1 part/s, design 2 parts/s
    line.advance(EXECUTE_AT + 3600)
    assert line.processed == 3600
    assert rec.values("Status.CurMachSpeed")[-1][0] == 60.0
    line.apply_input("Sim.FeedRate", 600.0)  # faster than design: capped at 120/min
    line.advance(EXECUTE_AT + 7200)
    assert line.processed == 3600 + 7200
    assert rec.values("Status.CurMachSpeed")[-1][0] == 120.0


def test_counters_are_uint32_and_wrap() -> None:
    line, rec = make(initial_processed_count=UINT32 - 5, initial_defective_count=UINT32 - 1, feed_rate_ppm=120.0)
    line.apply_input("Sim.QualityErrorMm", 1.0)  # every part rejected
    line.advance(EXECUTE_AT + 5.0)  # 2 parts/s -> 10 parts
    processed = [v for v, _ in rec.values("Admin.ProdProcessedCount")]
    assert processed == [UINT32 - 5, UINT32 - 4, UINT32 - 3, UINT32 - 2, UINT32 - 1, 0, 1, 2, 3, 4, 5]
    assert [v for v, _ in rec.values("Admin.ProdDefectiveCount")][:3] == [UINT32 - 1, 0, 1]
    assert all(0 <= v < UINT32 for v in processed)


@pytest.mark.parametrize(("error_mm", "low", "high"), [(0.0, 0.0, 0.0), (0.05, 0.40, 0.60), (0.2, 1.0, 1.0)])
def test_rejects_follow_the_tolerance(error_mm: float, low: float, high: float) -> None:
    line, rec = make(tolerance_mm=0.05, gauge_sigma_mm=0.005, feed_rate_ppm=120.0)
    line.apply_input("Sim.QualityErrorMm", error_mm)
    line.advance(EXECUTE_AT + 1000)
    deviations = [v for v, _ in rec.values("Quality.LastPartDeviation")]
    assert len(deviations) == line.processed == 2000
    # each part is rejected exactly when its measured deviation is out of tolerance
    assert line.defective == sum(abs(d) > 0.05 for d in deviations)
    assert low <= line.defective / line.processed <= high


def test_starved_line_suspends_after_timeout_and_resumes_with_feed() -> None:
    line, rec = make(starve_timeout_s=5.0)
    line.advance(EXECUTE_AT + 10)
    line.apply_input("Sim.FeedRate", 0.0)
    line.advance(EXECUTE_AT + 14.9)
    assert line.state == S.Execute
    line.advance(EXECUTE_AT + 20)
    assert line.state == S.Suspended and line.stop_reason == StopReason.Starved
    assert (S.Suspending, EXECUTE_AT + 15) in rec.values("Status.StateCurrent")
    line.apply_input("Sim.FeedRate", 100.0)
    line.advance(EXECUTE_AT + 25)
    assert line.state == S.Execute


def test_blocked_outfeed_suspends_until_released() -> None:
    line, _ = make()
    line.advance(EXECUTE_AT + 10)
    line.apply_input("Sim.OutfeedBlocked", True)
    line.advance(EXECUTE_AT + 60)
    assert line.state == S.Suspended and line.stop_reason == StopReason.Blocked
    parts = line.processed
    line.advance(EXECUTE_AT + 120)
    assert line.processed == parts
    line.apply_input("Sim.OutfeedBlocked", False)
    line.advance(EXECUTE_AT + 125)
    assert line.state == S.Execute


def test_batch_quantity_completes_and_reset_restarts() -> None:
    line, _ = make()
    line.apply_input("Command.BatchQuantity", 100)
    line.advance(EXECUTE_AT + 100)
    assert line.state == S.Complete and line.stop_reason == StopReason.BatchComplete
    assert line.processed == 100
    command(line, Cmd.Reset)
    line.advance(line.now + 4)
    assert line.state == S.Idle


def test_state_times_sum_to_time_since_start() -> None:
    line, rec = make()
    line.advance(EXECUTE_AT + 100)
    command(line, Cmd.Hold)
    line.advance(EXECUTE_AT + 200)
    total = sum(line.state_time(s) for s in S)
    assert total == pytest.approx(200 + 9, abs=1e-6)
    assert line.state_time(S.Execute) == pytest.approx(100)
    assert line.state_time(S.Held) == pytest.approx(100 - 2)
    assert rec.values("Admin.AccTimeSinceReset")[-1] == (209.0, T0 + 209)


def trajectory(seed: int, chunks: list[float]) -> list[tuple[str, Any, float]]:
    line, rec = make(seed=seed)
    line.apply_input("Sim.QualityErrorMm", 0.048)
    for t in chunks:
        line.advance(T0 + t)
    return rec.events


def test_same_seed_same_trajectory_whatever_the_time_chunks() -> None:
    one_go = trajectory(1, [3600.0])
    stepped = trajectory(1, [i * 0.37 for i in range(1, 9730)] + [3600.0])
    assert one_go == stepped
    assert trajectory(2, [3600.0]) != one_go
