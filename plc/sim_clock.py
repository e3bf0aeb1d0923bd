"""The PLC's simulated clock.

Three ways to run time:
- real-time at `speed` x wall clock (`--speed K`);
- catch-up: with a start in the past, run at `speed` until simulated time reaches the wall clock,
  then continue at 1x, so a twin started "three days ago" ends up live;
- step mode: time moves only when `step()` is called, so tests are fast and deterministic.

A speed the machine cannot serve degrades visibly instead of breaking the server: the scan loop
(plc/server.py) advances at most a bounded slice of simulated time per scan and calls `hold_back`
with the rest, so the plant slows down (it never jumps, and a catch-up still ends at the wall clock);
the server measures and reports the speed it achieves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime


class SimClock:
    """Maps wall-clock time to simulated epoch seconds."""

    def __init__(
        self,
        start: datetime | None = None,
        speed: float = 1.0,
        step_mode: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"--speed must be > 0, got {speed}")
        self._wall = wall
        self.step_mode = step_mode
        self.speed = float(speed)
        w0 = wall()
        self._origin_sim = w0 if start is None else start.timestamp()
        self._start = self._origin_sim
        self._origin_wall = w0
        self.held_back_s = 0.0
        self._paused: float | None = None
        lag = w0 - self._origin_sim
        if lag > 0 and not step_mode:
            if self.speed <= 1.0:
                raise ValueError(
                    f"--start is {lag:.0f} s in the past but --speed {speed} can never catch up with now; "
                    "use --speed > 1 (for example --speed 600) or a start time of now"
                )
            # Wall instant at which origin + speed * (w - w0) == w.
            self._catch_up_wall: float | None = w0 + lag / (self.speed - 1.0)
        else:
            self._catch_up_wall = None
        self._stepped = self._origin_sim

    @property
    def start(self) -> float:
        return self._start

    def now(self) -> float:
        """Current simulated time, epoch seconds."""
        if self.step_mode:
            return self._stepped
        if self._paused is not None:
            return self._paused
        w = self._wall()
        if self._catch_up_wall is not None and w >= self._catch_up_wall:
            return w
        return self._origin_sim + self.speed * (w - self._origin_wall)

    def current_speed(self) -> float:
        """Simulated seconds per wall second right now."""
        if self.step_mode or self._paused is not None:
            return 0.0
        if self._catch_up_wall is not None and self._wall() >= self._catch_up_wall:
            return 1.0
        return self.speed

    def hold_back(self, seconds: float) -> None:
        """Simulated time falls `seconds` behind the wall-clock mapping: the simulator could not serve its
        speed. Only an accelerated clock is held back (at 1x the plant stays on the wall clock); a
        catch-up is re-planned from the new simulated time, so it still ends exactly at the wall clock."""
        if self.step_mode or seconds <= 0 or self.current_speed() <= 1.0:
            return
        self._origin_sim -= seconds
        self.held_back_s += seconds
        if self._catch_up_wall is not None:
            w = self._wall()
            self._catch_up_wall = w + max(w - self.now(), 0.0) / (self.speed - 1.0)

    def pause(self, at: float | None = None) -> None:
        """Stop simulated time where it is, or at `at` (plc-sim --wait-for-subscriber: at the clock's start)."""
        if not self.step_mode and self._paused is None:
            self._paused = self.now() if at is None else at

    def resume(self) -> None:
        """Run on from where `pause` stopped, at `speed`; a clock behind the wall clock catches up again."""
        if self._paused is None:
            return
        w, t = self._wall(), self._paused
        self._paused = None
        self._origin_sim, self._origin_wall = t, w
        lag = w - t
        self._catch_up_wall = w + lag / (self.speed - 1.0) if lag > 0 and self.speed > 1.0 else None

    @property
    def paused(self) -> bool:
        return self._paused is not None

    def caught_up(self) -> bool:
        return self._catch_up_wall is not None and self._wall() >= self._catch_up_wall

    def step(self, seconds: float) -> float:
        """Advance a step-mode clock by `seconds`; returns the new simulated time."""
        if not self.step_mode:
            raise RuntimeError("step() needs a clock created with step_mode=True (plc-sim serve --step)")
        if not seconds >= 0:
            raise ValueError(f"step must be >= 0 seconds, got {seconds}")
        self._stepped += seconds
        return self._stepped
