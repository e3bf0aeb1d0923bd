"""Simulated time: speed, catch-up from a past start, step mode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plc.sim_clock import SimClock


class FakeWall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_speed_multiplies_wall_time() -> None:
    wall = FakeWall(1_000_000.0)
    clock = SimClock(speed=60, wall=wall)
    wall.t += 10
    assert clock.now() == pytest.approx(1_000_000.0 + 600)


def test_past_start_runs_fast_until_it_catches_up_then_1x() -> None:
    wall = FakeWall(1_000_000.0)
    start = datetime.fromtimestamp(1_000_000.0 - 990, UTC)
    clock = SimClock(start=start, speed=100, wall=wall)
    wall.t += 5
    assert clock.now() == pytest.approx(1_000_000.0 - 990 + 500)
    wall.t += 5  # at 10 s: origin + 1000 == wall -> caught up
    assert clock.now() == pytest.approx(wall.t)
    assert clock.caught_up() and clock.current_speed() == 1.0
    wall.t += 100
    assert clock.now() == wall.t


def test_past_start_without_speed_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="--speed > 1"):
        SimClock(start=datetime(2020, 1, 1, tzinfo=UTC), speed=1.0)


def test_step_mode_moves_only_when_stepped() -> None:
    wall = FakeWall(5.0)
    clock = SimClock(start=datetime.fromtimestamp(100.0, UTC), step_mode=True, wall=wall)
    wall.t += 1000
    assert clock.now() == 100.0
    assert clock.step(2.5) == 102.5
    with pytest.raises(ValueError):
        clock.step(-1)
    with pytest.raises(RuntimeError):
        SimClock().step(1)
