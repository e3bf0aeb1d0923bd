"""How fast the scan loop may go: a bounded slice of simulated time per scan, rest for the server, the
achieved speed measured.

At `--speed 3600` one unbounded scan advanced the lines by however much simulated time had passed,
the work grew with it, the event loop never got back to the OPC UA server (the collector's session
timed out 3 s in and never came back) and SIGTERM waited behind the scans. Bounded, a scan advances
at most `speed x max_scan_wall_s` simulated seconds, and no more than the simulated time it has been
measured to get through in `max_scan_work_s` of work; the rest is held back (plc/sim_clock.py),
the loop rests at least as long as the scan worked (`busy_fraction`), a loop that wakes up late
(the server's own work, or a busy machine) lowers the share of the requested speed it runs at
(multiplicative decrease, slow recovery), and the speed the plant really runs at is measured,
published as `Clock.Speed` and logged when it falls short.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from .sim_clock import SimClock

#: Achieved below this share of the requested speed: the simulator is saturated (logged).
SATURATED_BELOW = 0.9
#: A wake-up later than this (and than the scan interval) means a congested event loop.
LATE_S = 0.05
#: The share of the requested speed: times this on a late wake-up, plus RECOVER on a timely one.
BACK_OFF, RECOVER, MIN_SHARE = 0.7, 0.005, 0.01
#: Simulated seconds a scan gets through per second of work, before it is measured (2 lines do about 2,000).
INITIAL_THROUGHPUT = 1000.0


class Pacer:
    """The scan loop's governor for one clock."""

    def __init__(
        self,
        clock: SimClock,
        scan_interval_s: float,
        max_scan_wall_s: float = 0.1,
        busy_fraction: float = 0.5,
        max_scan_work_s: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
        window_s: float = 5.0,
    ) -> None:
        if not 0 < busy_fraction <= 1:
            raise ValueError(f"busy_fraction must be in (0, 1], got {busy_fraction}")
        self.clock = clock
        self.interval = scan_interval_s
        self.max_scan_wall_s = max(max_scan_wall_s, scan_interval_s)
        self.rest_ratio = (1.0 - busy_fraction) / busy_fraction
        self._monotonic = monotonic
        self._window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()
        self.last_target: float | None = None
        self._last_wall: float | None = None
        self._began: float | None = None
        self.max_scan_work_s = max_scan_work_s
        #: Simulated seconds per second of scan work (moving average): what a scan can get through.
        self.throughput = INITIAL_THROUGHPUT
        #: The share of the requested speed the loop can serve now (1: all of it).
        self.share = 1.0

    def target(self) -> float:
        """Simulated time the next scan advances to: the clock's now, or a bounded step past the last scan
        (the excess held back, so an overloaded simulator slows down instead of taking ever larger steps)."""
        self._began = self._monotonic()
        now = self.clock.now()
        if self.last_target is not None and self._last_wall is not None:
            wall = min(self._began - self._last_wall, self.max_scan_wall_s)
            budget = min(self.clock.current_speed() * self.share * wall, self.throughput * self.max_scan_work_s)
            excess = now - self.last_target - budget
            if excess > 0:
                self.clock.hold_back(excess)
                now = self.clock.now()
        return now

    def done(self, target: float) -> None:
        """Record a finished scan (wall time, simulated time) for the achieved speed."""
        wall = self._last_wall = self._monotonic()
        if self.last_target is not None and self._began is not None:
            advanced, worked = target - self.last_target, wall - self._began
            if advanced > 0 and worked > 0.002:  # too short a scan says nothing about the throughput
                self.throughput = 0.8 * self.throughput + 0.2 * advanced / worked
        self.last_target = target
        self._samples.append((wall, target))
        while len(self._samples) > 2 and wall - self._samples[1][0] >= self._window_s:
            self._samples.popleft()

    def forget(self) -> None:
        """Measure the achieved speed afresh (after the clock waited for a subscriber)."""
        self._samples.clear()
        self._last_wall = self._monotonic()

    def rest_s(self, worked_s: float) -> float:
        """Sleep after a scan that took `worked_s`: the rest of the interval, and at least the busy share."""
        return max(self.interval - worked_s, worked_s * self.rest_ratio)

    def woke(self, late_s: float) -> None:
        """The loop woke up `late_s` after the rest it asked for: back off when congested, recover slowly."""
        if late_s > max(LATE_S, self.interval):
            self.share = max(MIN_SHARE, self.share * BACK_OFF)
        else:
            self.share = min(1.0, self.share + RECOVER)

    def achieved_speed(self) -> float:
        """Simulated seconds per wall second over the last few seconds (the requested speed until measured)."""
        if self.clock.step_mode:
            return 0.0
        if len(self._samples) < 2:
            return self.clock.current_speed()
        (w0, s0), (w1, s1) = self._samples[0], self._samples[-1]
        return (s1 - s0) / (w1 - w0) if w1 > w0 else self.clock.current_speed()

    def saturated(self) -> bool:
        """True when the plant runs clearly slower than requested (before it caught up with the wall clock)."""
        requested = self.clock.current_speed()
        return requested > 1.0 and len(self._samples) >= 2 and self.achieved_speed() < SATURATED_BELOW * requested
